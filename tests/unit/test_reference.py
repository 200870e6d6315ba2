"""Image reference grammar, as tables taken from distribution/reference and go-digest.

Sources: reference_test.go (TestReferenceParse, TestSerialization), normalize_test.go
(TestValidateReferenceName, TestValidateRemoteName, TestParseRepositoryInfo,
TestNormalizedSplitHostname), regexp_test.go (TestDomainRegexp, TestFullNameRegexp,
TestReferenceRegexp, TestIdentifierRegexp) and go-digest's digest_test.go. Go's plain
`Parse` puts any first element that fits the host grammar into the domain; these tables
use `ParseNormalizedNamed`'s reading (splitDockerDomain), which is what runtimes apply.
"""

from __future__ import annotations

import dataclasses

import pytest

from rewriter.errors import RewriterError
from rewriter.reference import ImageRef, InvalidReference

HEX64 = "f" * 64
SHA256 = "sha256:" + HEX64
SHA384 = "sha384:" + "f" * 96
SHA512 = "sha512:" + "f" * 128
BE178 = "sha256:be178c0543eb17f5f3043021c9e5fcf30285e557a4fc309cce97ff9ca6182912"
IMAGE_ID = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"
LONG_NAMESPACE = "_".join(
    ["this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255"] * 4
)

FORMAT = "invalid reference format"
UPPERCASE = "repository name must be lowercase"
TOO_LONG = "repository name must not be more than 255 characters"
IDENTIFIER = "invalid repository name, cannot specify 64-byte hexadecimal strings"
DIGEST_FORMAT = "invalid checksum digest format"
DIGEST_UNSUPPORTED = "unsupported digest algorithm"


def case(
    text: str,
    domain: str,
    path: str,
    tag: str | None,
    digest: str | None,
    name: str,
    *,
    id: str | None = None,
) -> object:
    return pytest.param(text, domain, path, tag, digest, name, id=id or text[:80])


# text, domain as written, path as written, tag, digest, normalized name
VALID = [
    # reference_test.go TestReferenceParse
    case("test_com", "", "test_com", None, None, "docker.io/library/test_com"),
    case("test.com:tag", "", "test.com", "tag", None, "docker.io/library/test.com"),
    case("test.com:5000", "", "test.com", "5000", None, "docker.io/library/test.com"),
    case("test.com/repo:tag", "test.com", "repo", "tag", None, "test.com/repo"),
    case("test:5000/repo", "test:5000", "repo", None, None, "test:5000/repo"),
    case("test:5000/repo:tag", "test:5000", "repo", "tag", None, "test:5000/repo"),
    case(f"test:5000/repo@{SHA256}", "test:5000", "repo", None, SHA256, "test:5000/repo"),
    case(f"test:5000/repo:tag@{SHA256}", "test:5000", "repo", "tag", SHA256, "test:5000/repo"),
    case("lowercase:Uppercase", "", "lowercase", "Uppercase", None, "docker.io/library/lowercase"),
    case(
        "a/" * 127 + "a:tag-puts-this-over-max",
        "",
        "a/" * 127 + "a",
        "tag-puts-this-over-max",
        None,
        "docker.io/" + "a/" * 127 + "a",
        id="path-of-255-on-docker-hub",
    ),
    case(
        "sub-dom1.foo.com/bar/baz/quux",
        "sub-dom1.foo.com",
        "bar/baz/quux",
        None,
        None,
        "sub-dom1.foo.com/bar/baz/quux",
    ),
    case(
        "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
        "sub-dom1.foo.com",
        "bar/baz/quux",
        "some-long-tag",
        None,
        "sub-dom1.foo.com/bar/baz/quux",
    ),
    case(
        "b.gcr.io/test.example.com/my-app:test.example.com",
        "b.gcr.io",
        "test.example.com/my-app",
        "test.example.com",
        None,
        "b.gcr.io/test.example.com/my-app",
    ),
    case(
        "xn--n3h.com/myimage:xn--n3h.com",
        "xn--n3h.com",
        "myimage",
        "xn--n3h.com",
        None,
        "xn--n3h.com/myimage",
    ),
    case(
        f"xn--7o8h.com/myimage:xn--7o8h.com@{SHA512}",
        "xn--7o8h.com",
        "myimage",
        "xn--7o8h.com",
        SHA512,
        "xn--7o8h.com/myimage",
    ),
    case("foo_bar.com:8080", "", "foo_bar.com", "8080", None, "docker.io/library/foo_bar.com"),
    case("foo/foo_bar.com:8080", "", "foo/foo_bar.com", "8080", None, "docker.io/foo/foo_bar.com"),
    case("192.168.1.1", "", "192.168.1.1", None, None, "docker.io/library/192.168.1.1"),
    case("192.168.1.1:tag", "", "192.168.1.1", "tag", None, "docker.io/library/192.168.1.1"),
    case("192.168.1.1:5000", "", "192.168.1.1", "5000", None, "docker.io/library/192.168.1.1"),
    case("192.168.1.1/repo", "192.168.1.1", "repo", None, None, "192.168.1.1/repo"),
    case("192.168.1.1:5000/repo", "192.168.1.1:5000", "repo", None, None, "192.168.1.1:5000/repo"),
    case(
        "192.168.1.1:5000/repo:5050",
        "192.168.1.1:5000",
        "repo",
        "5050",
        None,
        "192.168.1.1:5000/repo",
    ),
    case("[2001:db8::1]/repo", "[2001:db8::1]", "repo", None, None, "[2001:db8::1]/repo"),
    case(
        "[2001:db8:1:2:3:4:5:6]/repo:tag",
        "[2001:db8:1:2:3:4:5:6]",
        "repo",
        "tag",
        None,
        "[2001:db8:1:2:3:4:5:6]/repo",
    ),
    case(
        "[2001:db8::1]:5000/repo",
        "[2001:db8::1]:5000",
        "repo",
        None,
        None,
        "[2001:db8::1]:5000/repo",
    ),
    case(
        "[2001:db8::1]:5000/repo:tag",
        "[2001:db8::1]:5000",
        "repo",
        "tag",
        None,
        "[2001:db8::1]:5000/repo",
    ),
    case(
        f"[2001:db8::1]:5000/repo@{SHA256}",
        "[2001:db8::1]:5000",
        "repo",
        None,
        SHA256,
        "[2001:db8::1]:5000/repo",
    ),
    case(
        f"[2001:db8::1]:5000/repo:tag@{SHA256}",
        "[2001:db8::1]:5000",
        "repo",
        "tag",
        SHA256,
        "[2001:db8::1]:5000/repo",
    ),
    case(
        "[2001:db8::]:5000/repo", "[2001:db8::]:5000", "repo", None, None, "[2001:db8::]:5000/repo"
    ),
    case("[::1]:5000/repo", "[::1]:5000", "repo", None, None, "[::1]:5000/repo"),
    case(
        "example.com/" + "a" * 255 + ":tag",
        "example.com",
        "a" * 255,
        "tag",
        None,
        "example.com/" + "a" * 255,
        id="path-of-255-domain-not-counted",
    ),
    # reference_test.go TestSerialization
    case(
        "example.com:8000/named", "example.com:8000", "named", None, None, "example.com:8000/named"
    ),
    case(
        "example.com:8000/named:tagged",
        "example.com:8000",
        "named",
        "tagged",
        None,
        "example.com:8000/named",
    ),
    case(
        "other.com/named@sha256:1234567890098765432112345667890098765432112345667890098765432112",
        "other.com",
        "named",
        None,
        "sha256:1234567890098765432112345667890098765432112345667890098765432112",
        "other.com/named",
    ),
    # regexp_test.go TestReferenceRegexp
    case(
        "registry.com:8080/myapp:tag",
        "registry.com:8080",
        "myapp",
        "tag",
        None,
        "registry.com:8080/myapp",
    ),
    case(
        f"registry.com:8080/myapp@{BE178}",
        "registry.com:8080",
        "myapp",
        None,
        BE178,
        "registry.com:8080/myapp",
    ),
    case(
        f"registry.com:8080/myapp:tag2@{BE178}",
        "registry.com:8080",
        "myapp",
        "tag2",
        BE178,
        "registry.com:8080/myapp",
    ),
    case(
        f"localhost:8080@{BE178}",
        "",
        "localhost",
        "8080",
        BE178,
        "docker.io/library/localhost",
        id="localhost-port-is-a-tag-without-a-path",
    ),
    case(
        f"localhost:8080/name@{BE178}", "localhost:8080", "name", None, BE178, "localhost:8080/name"
    ),
    case(f"localhost@{BE178}", "", "localhost", None, BE178, "docker.io/library/localhost"),
    # regexp_test.go TestFullNameRegexp, with splitDockerDomain's reading of the first element
    case("short", "", "short", None, None, "docker.io/library/short"),
    case("simple/name", "", "simple/name", None, None, "docker.io/simple/name"),
    case("library/ubuntu", "", "library/ubuntu", None, None, "docker.io/library/ubuntu"),
    case(
        "docker/stevvooe/app",
        "",
        "docker/stevvooe/app",
        None,
        None,
        "docker.io/docker/stevvooe/app",
    ),
    case("a/aa/a", "", "a/aa/a", None, None, "docker.io/a/aa/a"),
    case("foo.com", "", "foo.com", None, None, "docker.io/library/foo.com"),
    case("foo.com:8080/bar", "foo.com:8080", "bar", None, None, "foo.com:8080/bar"),
    case("foo.com/bar/baz", "foo.com", "bar/baz", None, None, "foo.com/bar/baz"),
    case("localhost:8080/bar", "localhost:8080", "bar", None, None, "localhost:8080/bar"),
    case("aa-a/a", "", "aa-a/a", None, None, "docker.io/aa-a/a"),
    case("foo_bar", "", "foo_bar", None, None, "docker.io/library/foo_bar"),
    case("foo.com/foo_bar", "foo.com", "foo_bar", None, None, "foo.com/foo_bar"),
    case(
        "example.com/xn--7o8h.com/myimage",
        "example.com",
        "xn--7o8h.com/myimage",
        None,
        None,
        "example.com/xn--7o8h.com/myimage",
    ),
    case(
        "example.com/some_separator__underscore/myimage",
        "example.com",
        "some_separator__underscore/myimage",
        None,
        None,
        "example.com/some_separator__underscore/myimage",
    ),
    case("do__cker/docker", "", "do__cker/docker", None, None, "docker.io/do__cker/docker"),
    case(
        "registry.io/foo/project--id.module--name.ver---sion--name",
        "registry.io",
        "foo/project--id.module--name.ver---sion--name",
        None,
        None,
        "registry.io/foo/project--id.module--name.ver---sion--name",
    ),
    case("Asdf.com/foo/bar", "Asdf.com", "foo/bar", None, None, "asdf.com/foo/bar"),
    # normalize_test.go TestValidateReferenceName / TestValidateRemoteName (valid names)
    case("docker/docker", "", "docker/docker", None, None, "docker.io/docker/docker"),
    case("debian", "", "debian", None, None, "docker.io/library/debian"),
    case("docker.io/debian", "docker.io", "debian", None, None, "docker.io/library/debian"),
    case(
        "docker.io/library/debian",
        "docker.io",
        "library/debian",
        None,
        None,
        "docker.io/library/debian",
    ),
    case(
        "index.docker.io/docker/docker",
        "index.docker.io",
        "docker/docker",
        None,
        None,
        "docker.io/docker/docker",
    ),
    case(
        "index.docker.io/debian",
        "index.docker.io",
        "debian",
        None,
        None,
        "docker.io/library/debian",
    ),
    case(
        "127.0.0.1:5000/library/debian",
        "127.0.0.1:5000",
        "library/debian",
        None,
        None,
        "127.0.0.1:5000/library/debian",
    ),
    case("127.0.0.1:5000/debian", "127.0.0.1:5000", "debian", None, None, "127.0.0.1:5000/debian"),
    case("192.168.0.1:80", "", "192.168.0.1", "80", None, "docker.io/library/192.168.0.1"),
    case("192.168.0.1:8/debian", "192.168.0.1:8", "debian", None, None, "192.168.0.1:8/debian"),
    case(
        "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
        "",
        "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
        None,
        None,
        "docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
    ),
    case("[fc00::1]:5000/docker", "[fc00::1]:5000", "docker", None, None, "[fc00::1]:5000/docker"),
    case(
        "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
        "[fc00:1:2:3:4:5:6:7]:5000",
        "library/debian",
        None,
        None,
        "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
    ),
    case(
        f"docker.io/{IMAGE_ID}",
        "docker.io",
        IMAGE_ID,
        None,
        None,
        f"docker.io/library/{IMAGE_ID}",
        id="image-id-with-a-domain",
    ),
    case(
        "Docker/docker",
        "Docker",
        "docker",
        None,
        None,
        "docker/docker",
        id="uppercase-first-element-is-a-domain",
    ),
    case("DOCKER/docker", "DOCKER", "docker", None, None, "docker/docker"),
    case(
        "docker---rules/docker",
        "",
        "docker---rules/docker",
        None,
        None,
        "docker.io/docker---rules/docker",
    ),
    case("d/docker", "", "d/docker", None, None, "docker.io/d/docker"),
    case("jess/t", "", "jess/t", None, None, "docker.io/jess/t"),
    # regexp_test.go TestDomainRegexp: what the Go regexp accepts, port not range-checked
    case(
        "[fd00123123123]:75050/repo",
        "[fd00123123123]:75050",
        "repo",
        None,
        None,
        "[fd00123123123]:75050/repo",
    ),
    case(
        "192.168.1.1:750050/repo",
        "192.168.1.1:750050",
        "repo",
        None,
        None,
        "192.168.1.1:750050/repo",
    ),
    # regexp_test.go TestIdentifierRegexp: only exactly 64 lowercase hex is an image ID
    case(IMAGE_ID[:63], "", IMAGE_ID[:63], None, None, f"docker.io/library/{IMAGE_ID[:63]}"),
    case(IMAGE_ID + "8482", "", IMAGE_ID + "8482", None, None, f"docker.io/library/{IMAGE_ID}8482"),
    case(
        f"sha256:{HEX64}",
        "",
        "sha256",
        HEX64,
        None,
        "docker.io/library/sha256",
        id="bare-digest-reads-as-name-and-tag",
    ),
    # everyday spellings
    case("nginx", "", "nginx", None, None, "docker.io/library/nginx"),
    case("nginx:1.25", "", "nginx", "1.25", None, "docker.io/library/nginx"),
    case("postgres:16", "", "postgres", "16", None, "docker.io/library/postgres"),
    case("bitnami/redis:7.2", "", "bitnami/redis", "7.2", None, "docker.io/bitnami/redis"),
    case(
        "docker.io/library/nginx:1.25",
        "docker.io",
        "library/nginx",
        "1.25",
        None,
        "docker.io/library/nginx",
    ),
    case(
        "index.docker.io/bitnami/redis:7",
        "index.docker.io",
        "bitnami/redis",
        "7",
        None,
        "docker.io/bitnami/redis",
    ),
    case(
        "docker.io/library/foo/bar",
        "docker.io",
        "library/foo/bar",
        None,
        None,
        "docker.io/library/foo/bar",
    ),
    case(
        "quay.io/my-org/api:v1.0.1", "quay.io", "my-org/api", "v1.0.1", None, "quay.io/my-org/api"
    ),
    case(
        "registry.replicated.com/my-kots-app/worker:1.0.1",
        "registry.replicated.com",
        "my-kots-app/worker",
        "1.0.1",
        None,
        "registry.replicated.com/my-kots-app/worker",
    ),
    case(
        "proxy.replicated.com/proxy/my-kots-app/quay.io/my-org/api:v1.0.1",
        "proxy.replicated.com",
        "proxy/my-kots-app/quay.io/my-org/api",
        "v1.0.1",
        None,
        "proxy.replicated.com/proxy/my-kots-app/quay.io/my-org/api",
    ),
    case("ghcr.io/org/app:1.0@" + SHA256, "ghcr.io", "org/app", "1.0", SHA256, "ghcr.io/org/app"),
    case("nginx@" + SHA384, "", "nginx", None, SHA384, "docker.io/library/nginx"),
    case("nginx:1.25@" + SHA512, "", "nginx", "1.25", SHA512, "docker.io/library/nginx"),
    # localhost is a domain only when a path follows (splitDockerDomain's fast path)
    case("localhost", "", "localhost", None, None, "docker.io/library/localhost"),
    case("localhost/foo", "localhost", "foo", None, None, "localhost/foo"),
    case(
        "localhost:5000/team/app:v1",
        "localhost:5000",
        "team/app",
        "v1",
        None,
        "localhost:5000/team/app",
    ),
    case("[::1]/app", "[::1]", "app", None, None, "[::1]/app"),
    # the registry host is case-insensitive; the text is never changed
    case(
        "Registry.Example.COM:5000/app",
        "Registry.Example.COM:5000",
        "app",
        None,
        None,
        "registry.example.com:5000/app",
    ),
    case(
        "Docker.IO/nginx",
        "Docker.IO",
        "nginx",
        None,
        None,
        "docker.io/library/nginx",
        id="deviation-docker-hub-host-case-insensitive",
    ),
    case("FOO/bar:Tag", "FOO", "bar", "Tag", None, "foo/bar"),
    # deviation: Go leaves Domain() empty here; runtimes dial the first element as a host
    case(
        "foo_bar.com/app",
        "foo_bar.com",
        "app",
        None,
        None,
        "foo_bar.com/app",
        id="deviation-underscore-host",
    ),
    # tags
    case(
        "nginx:" + "a" * 128,
        "",
        "nginx",
        "a" * 128,
        None,
        "docker.io/library/nginx",
        id="tag-of-128",
    ),
    case("nginx:_", "", "nginx", "_", None, "docker.io/library/nginx"),
    case("nginx:A.b-C_d", "", "nginx", "A.b-C_d", None, "docker.io/library/nginx"),
    # repository length: 'library/' counts on Docker Hub, the domain never does
    case(
        "a" * 247,
        "",
        "a" * 247,
        None,
        None,
        "docker.io/library/" + "a" * 247,
        id="docker-hub-single-component-247",
    ),
    case(
        "ab/" + "a" * 252,
        "",
        "ab/" + "a" * 252,
        None,
        None,
        "docker.io/ab/" + "a" * 252,
        id="docker-hub-two-components-255",
    ),
]


@pytest.mark.parametrize(("text", "domain", "path", "tag", "digest", "name"), VALID)
def test_valid(
    text: str, domain: str, path: str, tag: str | None, digest: str | None, name: str
) -> None:
    ref = ImageRef.parse(text)
    assert ref.text == text
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)
    registry, _, repository = name.partition("/")  # no host holds a "/"
    assert ref.registry == registry
    assert ref.repository == repository
    assert ref.name == name
    assert ref.reference == (digest or tag or "latest")
    locator = f"{domain}/{path}" if domain else path
    suffix = (f":{tag}" if tag is not None else "") + (f"@{digest}" if digest is not None else "")
    assert ref.locator == locator
    assert ref.suffix == suffix
    assert ref.locator + ref.suffix == text


# text, expected message (None: any reason)
INVALID = [
    # reference_test.go TestReferenceParse
    ("", FORMAT),
    (":justtag", FORMAT),
    ("@" + SHA256, FORMAT),
    ("repo@sha256:" + "f" * 34, DIGEST_FORMAT),
    ("validname@invaliddigest:" + HEX64, DIGEST_UNSUPPORTED),
    ("Uppercase:tag", UPPERCASE),
    ("test:5000/Uppercase/lowercase:tag", UPPERCASE),
    ("domain/" + "a" * 256 + ":tag", TOO_LONG),
    ("a/" * 128 + "a:tag", TOO_LONG),
    ("aa/asdf$$^/aa", FORMAT),
    ("[2001:db8::1]", FORMAT),
    ("[2001:db8::1]:5000", FORMAT),
    ("[2001:db8::1]:tag", FORMAT),
    ("[fe80::1%eth0]:5000/repo", FORMAT),
    ("[fe80::1%@invalidzone]:5000/repo", FORMAT),
    # normalize_test.go TestValidateReferenceName / TestValidateRemoteName
    ("https://github.com/docker/docker", FORMAT),
    ("docker/Docker", UPPERCASE),
    ("-docker", FORMAT),
    ("-docker/docker", FORMAT),
    ("-docker.io/docker/docker", FORMAT),
    ("docker///docker", FORMAT),
    ("docker.io/docker/Docker", UPPERCASE),
    ("docker.io/docker///docker", FORMAT),
    ("[fc00::1]", FORMAT),
    ("[fc00::1]:5000", FORMAT),
    ("fc00::1:5000/debian", FORMAT),
    ("[fe80::1%eth0]:5000/debian", FORMAT),
    ("[2001:db8:3:4::192.0.2.33]:5000/debian", FORMAT),
    (IMAGE_ID, IDENTIFIER),
    ("docker-/docker", FORMAT),
    ("-docker-/docker", FORMAT),
    ("____/____", FORMAT),
    ("_docker/_docker", FORMAT),
    ("dock..er/docker", FORMAT),
    ("dock_.er/docker", FORMAT),
    ("dock-.er/docker", FORMAT),
    ("docker/", FORMAT),
    (LONG_NAMESPACE + "/docker", TOO_LONG),
    ("-foo", FORMAT),
    # regexp_test.go TestDomainRegexp / TestFullNameRegexp / TestReferenceRegexp
    ("test.com:http/repo", FORMAT),
    ("-ab.com/repo", FORMAT),
    ("ab-.com/repo", FORMAT),
    ("ab.-com/repo", FORMAT),
    ("ab.com-/repo", FORMAT),
    ("[fd00:1:2::3]75050/repo", FORMAT),
    ("[fd00:1:2::3]::75050/repo", FORMAT),
    ("[fd00:1:2::3%eth0]:75050/repo", FORMAT),
    ("fd00:1:2::3:75050/repo", FORMAT),
    ("a/a/a/a/", FORMAT),
    ("a//a/a", FORMAT),
    ("foo.com/", FORMAT),
    ("foo.com:http/bar", FORMAT),
    ("a^a", FORMAT),
    ("asdf$$^/aa", FORMAT),
    ("a-/a/a/a", FORMAT),
    ("foo.com/a-/a/a", FORMAT),
    ("-foo/bar", FORMAT),
    ("foo/bar-", FORMAT),
    ("foo-/bar", FORMAT),
    ("foo/-bar", FORMAT),
    ("_foo/bar", FORMAT),
    ("foo_bar.com:8080/app", FORMAT),
    ("docker_/docker_", FORMAT),
    ("example.com/__underscore/myimage", FORMAT),
    ("example.com/..dots/myimage", FORMAT),
    ("example.com/.dots/myimage", FORMAT),
    ("example.com/nodouble..dots/myimage", FORMAT),
    ("docker./docker", FORMAT),
    (".docker/docker", FORMAT),
    ("do..cker/docker", FORMAT),
    ("do__cker:8080/docker", FORMAT),
    ("Foo/FarB", UPPERCASE),
    ("registry.com:8080/myapp@sha256:badbadbadbad", FORMAT),
    ("registry.com:8080/myapp:invalid~tag", FORMAT),
    ("bad_hostname.com:8080/myapp:tag", FORMAT),
    (f"localhost:http/name@{BE178}", FORMAT),
    ("registry.com:8080/myapp@bad", FORMAT),
    ("registry.com:8080/myapp@2bad", FORMAT),
    # TestIdentifierRegexp: uppercase hex is no image ID, just an uppercase name
    ("7EC43B381E5AEFE6E04EFB0B3F0693FF2A4A50652D64AEC573905F2DB5889A1C", UPPERCASE),
    # go-digest Digest.Validate
    ("nginx@sha256:" + "F" * 64, DIGEST_FORMAT),
    ("nginx@sha256:" + "f" * 63, DIGEST_FORMAT),
    ("nginx@sha256:" + "f" * 65, DIGEST_FORMAT),
    ("nginx@sha256:abcdef0123456789abcdef0123456789", DIGEST_FORMAT),
    ("nginx@sha384:" + HEX64, DIGEST_FORMAT),
    ("nginx@sha512:" + HEX64, DIGEST_FORMAT),
    ("nginx@sha512:" + "f" * 96, DIGEST_FORMAT),
    ("nginx@SHA256:" + HEX64, DIGEST_FORMAT),
    ("nginx@blake3:" + HEX64, DIGEST_UNSUPPORTED),
    ("nginx@md5:d41d8cd98f00b204e9800998ecf8427e", DIGEST_UNSUPPORTED),
    ("nginx@sha384.foo+bar:" + "f" * 96, DIGEST_UNSUPPORTED),
    ("nginx@sha384_foo+bar:" + "f" * 96, DIGEST_UNSUPPORTED),
    ("nginx@sha384__foo+bar:" + "f" * 96, FORMAT),
    ("nginx@sha256+b64:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564", FORMAT),
    ("nginx@sha256:d41d8cd98f00b204e9800m98ecf8427e", FORMAT),
    ("nginx@sha256:" + "f" * 31, FORMAT),
    ("nginx@sha256:", FORMAT),
    ("nginx@", FORMAT),
    ("nginx@" + HEX64, FORMAT),
    ("nginx:1.25@", FORMAT),
    ("nginx@" + SHA256 + "@" + SHA256, FORMAT),
    # lengths
    ("a" * 248, TOO_LONG),
    ("docker.io/" + "a" * 248, TOO_LONG),
    ("index.docker.io/" + "a" * 248, TOO_LONG),
    ("example.com/" + "a" * 256, TOO_LONG),
    ("ab/" + "a" * 253, TOO_LONG),
    ("nginx:" + "a" * 129, FORMAT),
    # tags
    ("nginx:", FORMAT),
    ("nginx:.tag", FORMAT),
    ("nginx:-tag", FORMAT),
    ("nginx:tag:tag", FORMAT),
    ("nginx:tag/x", FORMAT),
    ("nginx:t~g", FORMAT),
    # uppercase repositories
    ("NGINX", UPPERCASE),
    ("Nginx:1.25", UPPERCASE),
    ("quay.io/My-Org/api:v1", UPPERCASE),
    ("Foo/Bar", UPPERCASE),
    ("FOO_BAR/app", UPPERCASE),
    ("localhost:5000/Foo:tag", UPPERCASE),
    ("Nginx@" + SHA256, UPPERCASE),
    # templated values and other text that is not a reference
    ("{{ .Values.image }}", FORMAT),
    ("{{.Values.Image}}", FORMAT),
    ("{{ .Values.image.repository }}:{{ .Values.image.tag }}", FORMAT),
    ("nginx:{{ .Chart.AppVersion }}", FORMAT),
    ("repo/{{ .Values.name }}:1", FORMAT),
    ("$(params.image)", FORMAT),
    ("${IMAGE}", FORMAT),
    ("$IMAGE", FORMAT),
    ("<no value>", FORMAT),
    ("image: nginx", FORMAT),
    ("docker://nginx", FORMAT),
    ("https://quay.io/org/app", FORMAT),
    ('"nginx"', FORMAT),
    ("nginx # comment", FORMAT),
    # whitespace is never stripped
    (" ", FORMAT),
    ("\n", FORMAT),
    (" nginx", FORMAT),
    ("nginx ", FORMAT),
    ("nginx\n", FORMAT),
    ("\tnginx", FORMAT),
    ("ngi nx", FORMAT),
    ("nginx:1.25 ", FORMAT),
    ("nginx:1.25\r\n", FORMAT),
    # Go's \w is ASCII
    ("nginx:1.25\u00e9", FORMAT),
    ("ng\u00ednx", FORMAT),
    ("nginx:\u0661\u0662", FORMAT),
    ("\u0131mage/app", FORMAT),
]


@pytest.mark.parametrize(
    ("text", "message"), [pytest.param(t, m, id=repr(t)[:80]) for t, m in INVALID]
)
def test_invalid(text: str, message: str | None) -> None:
    with pytest.raises(InvalidReference) as info:
        ImageRef.parse(text)
    if message is not None:
        assert str(info.value) == message


@pytest.mark.parametrize("text", ["", "{{ .Values.image }}", "NGINX"])
def test_invalid_is_raised_every_time(text: str) -> None:
    for _ in range(2):  # failures are memoized too, and must still raise
        with pytest.raises(InvalidReference):
            ImageRef.parse(text)


@pytest.mark.parametrize("value", [None, 123, 1.25, b"nginx", ["nginx"], {"image": "nginx"}])
def test_not_a_string(value: object) -> None:
    with pytest.raises(InvalidReference):
        ImageRef.parse(value)  # type: ignore[arg-type]


def test_invalid_reference_is_a_rewriter_error() -> None:
    assert issubclass(InvalidReference, RewriterError)


# normalize_test.go TestParseRepositoryInfo:
# RemoteName, FamiliarName, FullName, AmbiguousName, Domain
REPOSITORY_INFO = [
    ("fooo/bar", "fooo/bar", "docker.io/fooo/bar", "index.docker.io/fooo/bar", "docker.io"),
    ("library/ubuntu", "ubuntu", "docker.io/library/ubuntu", "library/ubuntu", "docker.io"),
    ("nonlibrary/ubuntu", "nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu", "", "docker.io"),
    ("other/library", "other/library", "docker.io/other/library", "", "docker.io"),
    (
        "private/moonbase",
        "127.0.0.1:8000/private/moonbase",
        "127.0.0.1:8000/private/moonbase",
        "",
        "127.0.0.1:8000",
    ),
    (
        "privatebase",
        "127.0.0.1:8000/privatebase",
        "127.0.0.1:8000/privatebase",
        "",
        "127.0.0.1:8000",
    ),
    (
        "private/moonbase",
        "example.com/private/moonbase",
        "example.com/private/moonbase",
        "",
        "example.com",
    ),
    ("privatebase", "example.com/privatebase", "example.com/privatebase", "", "example.com"),
    (
        "private/moonbase",
        "example.com:8000/private/moonbase",
        "example.com:8000/private/moonbase",
        "",
        "example.com:8000",
    ),
    (
        "privatebasee",
        "example.com:8000/privatebasee",
        "example.com:8000/privatebasee",
        "",
        "example.com:8000",
    ),
    (
        "library/ubuntu-12.04-base",
        "ubuntu-12.04-base",
        "docker.io/library/ubuntu-12.04-base",
        "index.docker.io/library/ubuntu-12.04-base",
        "docker.io",
    ),
    ("library/foo", "foo", "docker.io/library/foo", "docker.io/foo", "docker.io"),
    ("library/foo/bar", "library/foo/bar", "docker.io/library/foo/bar", "", "docker.io"),
    ("store/foo/bar", "store/foo/bar", "docker.io/store/foo/bar", "", "docker.io"),
    ("bar", "Foo/bar", "Foo/bar", "", "Foo"),
    ("bar", "FOO/bar", "FOO/bar", "", "FOO"),
]


@pytest.mark.parametrize(
    ("text", "remote", "familiar", "domain"),
    [
        pytest.param(text, remote, familiar, domain, id=f"{index}/{text}")
        for index, (remote, familiar, full, ambiguous, domain) in enumerate(REPOSITORY_INFO)
        for text in (familiar, full, ambiguous)
        if text
    ],
)
def test_repository_info(text: str, remote: str, familiar: str, domain: str) -> None:
    ref = ImageRef.parse(text)
    assert ref.repository == remote
    assert ref.registry == domain.lower()
    assert ref.name == f"{domain.lower()}/{remote}"
    assert ref.familiar == familiar


# normalize_test.go TestNormalizedSplitHostname (Go's domain there is already normalized)
@pytest.mark.parametrize(
    ("text", "registry", "repository"),
    [
        ("test.com/foo", "test.com", "foo"),
        ("test_com/foo", "docker.io", "test_com/foo"),
        ("docker/migrator", "docker.io", "docker/migrator"),
        ("test.com:8080/foo", "test.com:8080", "foo"),
        ("test-com:8080/foo", "test-com:8080", "foo"),
        ("foo", "docker.io", "library/foo"),
        ("xn--n3h.com/foo", "xn--n3h.com", "foo"),
        ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
        ("docker.io/foo", "docker.io", "library/foo"),
        ("docker.io/library/foo", "docker.io", "library/foo"),
        ("docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
        # reference_test.go TestDomainAndPath
        ("test:8080/foo", "test:8080", "foo"),
    ],
)
def test_normalized_split_hostname(text: str, registry: str, repository: str) -> None:
    ref = ImageRef.parse(text)
    assert (ref.registry, ref.repository) == (registry, repository)


# regexp_test.go TestDomainRegexp, each domain placed in front of a path
@pytest.mark.parametrize(
    ("domain", "valid"),
    [
        ("test.com", True),
        ("test.com:10304", True),
        ("test.com:http", False),
        ("localhost", True),
        ("localhost:8080", True),
        ("a.b", True),
        ("ab.cd.com", True),
        ("a-b.com", True),
        ("-ab.com", False),
        ("ab-.com", False),
        ("ab.c-om", True),
        ("ab.-com", False),
        ("ab.com-", False),
        ("0101.com", True),
        ("001a.com", True),
        ("b.gbc.io:443", True),
        ("b.gbc.io", True),
        ("xn--n3h.com", True),
        ("Asdf.com", True),
        ("192.168.1.1:75050", True),
        ("192.168.1.1:750050", True),
        ("[fd00:1:2::3]:75050", True),
        ("[fd00:1:2::3]75050", False),
        ("[fd00:1:2::3]::75050", False),
        ("[fd00:1:2::3%eth0]:75050", False),
        ("[fd00123123123]:75050", True),
        ("[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:75050", True),
        ("[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:750505", True),
        ("fd00:1:2::3:75050", False),
    ],
)
def test_domain(domain: str, valid: bool) -> None:
    text = f"{domain}/repo:tag"
    if not valid:
        with pytest.raises(InvalidReference):
            ImageRef.parse(text)
        return
    ref = ImageRef.parse(text)
    assert (ref.domain, ref.path, ref.tag) == (domain, "repo", "tag")
    assert ref.registry == domain.lower()
    assert ref.locator == f"{domain}/repo"


def test_single_letter_first_element_is_a_docker_hub_namespace() -> None:
    # The Go regexp accepts "a" as a host, but splitDockerDomain (dot, colon, localhost
    # or uppercase) does not: "a/repo" is the Docker Hub repository "a/repo".
    ref = ImageRef.parse("a/repo")
    assert (ref.domain, ref.path, ref.name) == ("", "a/repo", "docker.io/a/repo")


@pytest.mark.parametrize(
    ("text", "has_port"),
    [
        ("localhost:5000/app", True),
        ("localhost/app", False),
        ("localhost:5000", False),  # a Docker Hub image "localhost" with tag "5000"
        ("test:5000/repo", True),
        ("example.com/app:5000", False),
        ("example.com:443/app", True),
        ("[::1]/app", False),
        ("[::1]:5000/app", True),
        ("[2001:db8::1]:5000/repo:tag", True),
        ("[2001:db8::1]/repo", False),
        ("nginx", False),
        ("192.168.1.1:5000/repo", True),
        ("192.168.1.1/repo", False),
    ],
)
def test_has_port(text: str, has_port: bool) -> None:
    assert ImageRef.parse(text).has_port is has_port


@pytest.mark.parametrize(
    ("text", "reference"),
    [
        ("nginx", "latest"),
        ("nginx:1.25", "1.25"),
        ("nginx:Latest", "Latest"),
        ("nginx@" + SHA256, SHA256),
        ("nginx:1.25@" + SHA256, SHA256),
        ("localhost:5000/app", "latest"),
    ],
)
def test_reference_to_probe(text: str, reference: str) -> None:
    assert ImageRef.parse(text).reference == reference


@pytest.mark.parametrize(
    ("text", "familiar"),
    [
        ("nginx:1.25", "nginx"),
        ("docker.io/library/nginx", "nginx"),
        ("index.docker.io/library/nginx", "nginx"),
        ("docker.io/bitnami/redis", "bitnami/redis"),
        ("library/foo/bar", "library/foo/bar"),
        ("quay.io/my-org/api:v1", "quay.io/my-org/api"),
        ("localhost:5000/app", "localhost:5000/app"),
        ("[::1]:5000/app", "[::1]:5000/app"),
    ],
)
def test_familiar(text: str, familiar: str) -> None:
    assert ImageRef.parse(text).familiar == familiar


PROXY = "proxy.replicated.com/proxy/my-kots-app/"


@pytest.mark.parametrize(
    ("text", "suffix"),
    [
        ("nginx", ""),
        ("nginx:1.25", ":1.25"),
        ("quay.io/my-org/api:v1.0.1", ":v1.0.1"),
        ("quay.io/my-org/api@" + SHA256, "@" + SHA256),
        ("quay.io/my-org/api:v1@" + SHA256, ":v1@" + SHA256),
        ("ghcr.io/org/app:MiXeD_Tag.1-x", ":MiXeD_Tag.1-x"),
        ("nginx:1.25@" + SHA512, ":1.25@" + SHA512),
        ("index.docker.io/nginx:1", ":1"),
        (f"localhost:8080@{BE178}", f":8080@{BE178}"),
    ],
)
def test_with_locator_keeps_suffix_byte_for_byte(text: str, suffix: str) -> None:
    ref = ImageRef.parse(text)
    assert ref.suffix == suffix
    assert ref.locator == text[: len(text) - len(suffix)]
    new_text = ref.with_locator(PROXY + ref.locator)
    assert new_text == PROXY + text
    assert new_text.endswith(suffix)
    moved = ImageRef.parse(new_text)
    assert (moved.tag, moved.digest) == (ref.tag, ref.digest)
    assert moved.suffix == ref.suffix


@pytest.mark.parametrize("text", ["Docker.IO/nginx:Latest", "[::1]/app:1", "localhost:5000/app:1"])
def test_with_locator_does_not_validate(text: str) -> None:
    # An uppercase host, an IPv6 host or a port cannot become a proxy path component:
    # with_locator only concatenates, and parsing the result is how a caller finds out.
    ref = ImageRef.parse(text)
    new_text = ref.with_locator(PROXY + ref.locator)
    assert new_text == PROXY + text
    with pytest.raises(InvalidReference):
        ImageRef.parse(new_text)


def test_text_is_kept_exactly() -> None:
    text = "Docker.IO/nginx:1.25"
    ref = ImageRef.parse(text)
    assert ref.text == text
    assert str(ref) == text
    assert ref.name == "docker.io/library/nginx"


def test_parse_is_memoized() -> None:
    text = "quay.io/my-org/memo:1"
    assert ImageRef.parse(text) is ImageRef.parse(text)


def test_frozen() -> None:
    ref = ImageRef.parse("nginx")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.tag = "1"  # type: ignore[misc]

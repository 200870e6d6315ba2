from __future__ import annotations

import pytest

from rewriter.decide import Action, OnProbeError, Rules, decide, decide_by_rule
from rewriter.probe.verdict import ProbeResult, Verdict
from rewriter.reference import ImageRef

RULES = Rules(app_slug="acme", public=("docker.io/library/*",), private=("quay.io/my-org/*",))


def ref(text: str) -> ImageRef:
    return ImageRef.parse(text)


@pytest.mark.parametrize(
    ("image", "action", "new_text", "reason"),
    [
        ("proxy.replicated.com/proxy/acme/quay.io/x:1", Action.LICENSED, None, "on the proxy"),
        ("registry.replicated.com/acme/worker:1", Action.LICENSED, None, "on the vendor registry"),
        ("nginx:1.25", Action.KEEP, None, "rule --public 'docker.io/library/*'"),
        ("index.docker.io/library/nginx", Action.KEEP, None, "rule --public 'docker.io/library/*'"),
        (
            "quay.io/my-org/api:v1.0.1",
            Action.PROXY,
            "proxy.replicated.com/proxy/acme/quay.io/my-org/api:v1.0.1",
            "rule --private 'quay.io/my-org/*'",
        ),
        (
            "quay.io/my-org/api:v1@sha256:" + "a" * 64,
            Action.PROXY,
            "proxy.replicated.com/proxy/acme/quay.io/my-org/api:v1@sha256:" + "a" * 64,
            "rule --private 'quay.io/my-org/*'",
        ),
    ],
)
def test_rules_in_order(image, action, new_text, reason):
    decision = decide_by_rule(ref(image), RULES)
    assert decision is not None
    assert (decision.action, decision.new_text, decision.reason) == (action, new_text, reason)


def test_public_wins_over_private():
    rules = Rules(app_slug="acme", public=("*",), private=("*",))
    assert decide(ref("quay.io/a/b"), rules, None).action is Action.KEEP


def test_star_matches_slashes_and_proxy_keeps_the_users_spelling():
    decision = decide(ref("nginx:1.25"), Rules(app_slug="s", private=("*",)), None)
    assert decision.new_text == "proxy.replicated.com/proxy/s/nginx:1.25"


def test_custom_domains_move_images_off_the_default_hosts():
    rules = Rules(app_slug="a", proxy_host="proxy.vendor.com", registry_host="images.vendor.com")
    moved = decide(ref("registry.replicated.com/a/w:1"), rules, None)
    assert (moved.action, moved.new_text) == (Action.LICENSED, "images.vendor.com/a/w:1")
    on_proxy = decide(ref("proxy.replicated.com/proxy/a/x:1"), rules, None)
    assert on_proxy.new_text == "proxy.vendor.com/proxy/a/x:1"
    assert decide(ref("images.vendor.com/a/w:1"), rules, None).new_text is None


@pytest.mark.parametrize(
    ("verdict", "action"),
    [
        (Verdict.PUBLIC, Action.KEEP),
        (Verdict.PRIVATE, Action.PROXY),
        # Not found and not probed are warned of once per registry by the command line
        # (report.probe_warnings), not per image.
        (Verdict.MISSING, Action.PROXY),
        (Verdict.UNKNOWN, Action.PROXY),
    ],
)
def test_probe_answers(verdict, action):
    decision = decide(ref("ghcr.io/x/y:1"), Rules(app_slug="a"), ProbeResult(verdict, "HTTP n"))
    assert decision.action is action


@pytest.mark.parametrize(
    ("policy", "action"),
    [
        (OnProbeError.PROXY, Action.PROXY),
        (OnProbeError.KEEP, Action.KEEP),
        (OnProbeError.FAIL, Action.FAIL),
    ],
)
def test_unknown_follows_on_probe_error(policy, action):
    rules = Rules(app_slug="a", on_probe_error=policy)
    unknown = decide(ref("ghcr.io/x/y"), rules, ProbeResult(Verdict.UNKNOWN, "timeout after 5.0s"))
    offline = decide(ref("ghcr.io/x/y"), rules, None)
    assert unknown.action is offline.action is action
    assert unknown.reason == f"probe failed: timeout after 5.0s; --on-probe-error={policy.value}"
    assert offline.reason == f"offline, not in cache; --on-probe-error={policy.value}"
    cached_not = decide(ref("ghcr.io/x/y"), rules, ProbeResult(Verdict.UNKNOWN, "offline, not in cache"))
    assert cached_not.reason == offline.reason  # one wording for one thing


def test_cached_answers_say_so():
    decision = decide(
        ref("ghcr.io/x/y"), Rules(app_slug="a"), ProbeResult(Verdict.PRIVATE, "401", True)
    )
    assert decision.reason == "cache: private (401)"


@pytest.mark.parametrize("image", ["localhost:5000/x:1", "Registry.Example.com/app", "[::1]/app"])
def test_private_images_that_cannot_become_a_proxy_path_fail(image):
    decision = decide(ref(image), Rules(app_slug="a", private=("*",)), None)
    assert decision.action is Action.FAIL
    assert decision.new_text is None


@pytest.mark.parametrize(
    ("image", "keep_path", "new_text"),
    [
        ("quay.io/a/api:1", False, "reg.local/ns/api:1"),
        ("nginx@sha256:" + "b" * 64, False, "reg.local/ns/nginx@sha256:" + "b" * 64),
        ("quay.io/a/api:1", True, "reg.local/ns/quay.io/a/api:1"),
        ("nginx:1", True, "reg.local/ns/docker.io/library/nginx:1"),
        ("reg.local/ns/api:1", False, None),
    ],
)
def test_local_registry_takes_every_image(image, keep_path, new_text):
    rules = Rules(app_slug="a", public=("*",), local_registry="reg.local/ns", keep_path=keep_path)
    decision = decide(ref(image), rules, None)
    assert (decision.action, decision.new_text) == (Action.LOCAL, new_text)


def test_flattening_collisions_fail_with_both_names():
    from rewriter.decide import collisions

    rules = Rules(app_slug="a", local_registry="reg.local/ns")
    refs = [ref("quay.io/a/api:1"), ref("docker.io/b/api:2"), ref("quay.io/a/api:3"), ref("web:1")]
    decided = {r: decide(r, rules, None) for r in refs}
    failed = collisions(decided)
    assert set(failed) == {refs[0], refs[1], refs[2]}
    assert failed[refs[1]].reason == (
        "local registry; docker.io/b/api and quay.io/a/api would all become reg.local/ns/api: use --keep-path"
    )
    keep = Rules(app_slug="a", local_registry="reg.local/ns", keep_path=True)
    assert collisions({r: decide(r, keep, None) for r in refs}) == {}

"""The built-in catalogue, checked against the real corpus documents that use each entry."""

from __future__ import annotations

import collections
import io

import pytest
from support import CORPUS, FIXTURES

from rewriter.decide import Rules
from rewriter.diagnostics import Reporter
from rewriter.manifest import catalogue
from rewriter.manifest.document import Document, parse
from rewriter.manifest.fields import FieldTable, ImageField, PodSpecField, find_images, format_path
from rewriter.render import find_and_decide
from rewriter.render_options import Options

TABLE = catalogue.builtin()
REAL_DOCUMENTS = [
    *sorted(CORPUS.glob("*.yaml")),
    # Documents of projects the corpus lacks, copied unchanged from their repositories.
    *sorted((FIXTURES / "troubleshoot").glob("*.yaml")),
]
# Entries no corpus document exercises; each is covered by a synthetic document below.
NOT_IN_CORPUS = {
    "PrometheusAgent spec.image",
    "Prometheus spec.thanos.image",
    "Prometheus spec.containers[*].image",
    "Prometheus spec.initContainers[*].image",
    "Alertmanager spec.containers[*].image",
    "Alertmanager spec.initContainers[*].image",
    "ThanosRuler spec.image",
    "ThanosRuler spec.containers[*].image",
    "CronWorkflow spec.workflowSpec.templates[*].script.image",
    "CronWorkflow spec.workflowSpec.templates[*].sidecars[*].image",
    "CronWorkflow spec.workflowSpec.templates[*].initContainers[*].image",
    "CronWorkflow spec.workflowSpec.templates[*].containerSet.containers[*].image",
    "Task spec.sidecars[*].image",
    "Task spec.stepTemplate.image",
    "ClusterTask spec.steps[*].image",
    "ClusterTask spec.sidecars[*].image",
    "ClusterTask spec.stepTemplate.image",
    "Pipeline spec.tasks[*].taskSpec.sidecars[*].image",
    "Pipeline spec.tasks[*].taskSpec.stepTemplate.image",
    "Pipeline spec.finally[*].taskSpec.steps[*].image",
    "TaskRun spec.taskSpec.steps[*].image",
    "PipelineRun spec.pipelineSpec.tasks[*].taskSpec.steps[*].image",
    "ServingRuntime spec",
    "ServingRuntime spec.workerSpec",
    "* spec.collectors[*].dns.image",
    "* spec.collectors[*].goldpinger.podLaunchOptions.image",
}


def key(entry: PodSpecField | ImageField) -> str:
    return f"{entry.kinds} {format_path(entry.path)}"


def corpus_hits() -> dict[str, int]:
    """How many images each catalogue entry finds in the corpus, entry by entry."""
    hits: collections.Counter[str] = collections.Counter()
    for path in REAL_DOCUMENTS:
        opts = Options(rules=Rules(app_slug="a", public=("*",)), secret_name="s", fields=TABLE)
        plan = find_and_decide(path.read_bytes(), opts, lambda refs: {}, Reporter(io.StringIO()))
        # The plan lets go of the trees it has visited: compose the documents it parsed.
        for doc in (parse(item.chunk) for item in plan.items if isinstance(item, Document)):
            for resource in doc.resources():
                for entry in TABLE.pod_specs[4:]:
                    single = FieldTable(pod_specs=(entry,))
                    hits[key(entry)] += sum(1 for _ in find_images(resource, single))
                for image_entry in TABLE.images:
                    single = FieldTable(pod_specs=(), images=(image_entry,))
                    hits[key(image_entry)] += sum(1 for _ in find_images(resource, single))
    return hits


HITS = corpus_hits()


@pytest.mark.parametrize("entry", [*TABLE.pod_specs[4:], *TABLE.images], ids=key)
def test_each_catalogue_entry_matches_real_documents(entry):
    if key(entry) in NOT_IN_CORPUS:
        assert HITS[key(entry)] == 0, "now in the corpus: drop it from NOT_IN_CORPUS"
    else:
        assert HITS[key(entry)] > 0


SYNTHETIC = """\
apiVersion: monitoring.coreos.com/v1
kind: PrometheusAgent
spec: {image: quay.io/p/agent:1}
---
apiVersion: monitoring.coreos.com/v1
kind: Prometheus
spec:
  thanos: {image: quay.io/t/thanos:1}
  containers: [{name: c, image: quay.io/p/c:1}]
  initContainers: [{name: i, image: quay.io/p/i:1}]
---
apiVersion: monitoring.coreos.com/v1
kind: Alertmanager
spec:
  containers: [{name: c, image: quay.io/a/c:1}]
  initContainers: [{name: i, image: quay.io/a/i:1}]
---
apiVersion: monitoring.coreos.com/v1
kind: ThanosRuler
spec:
  image: quay.io/t/ruler:1
  containers: [{name: c, image: quay.io/t/c:1}]
---
apiVersion: argoproj.io/v1alpha1
kind: Workflow
spec:
  templates: [{name: t, initContainers: [{name: i, image: quay.io/w/i:1}], container: {image: quay.io/w/c:1}}]
---
apiVersion: argoproj.io/v1alpha1
kind: CronWorkflow
spec:
  workflowSpec:
    templates:
    - {name: a, script: {image: quay.io/c/script:1}, sidecars: [{name: s, image: quay.io/c/side:1}]}
    - {name: b, initContainers: [{name: i, image: quay.io/c/init:1}], containerSet: {containers: [{name: x, image: quay.io/c/set:1}]}}
---
apiVersion: tekton.dev/v1
kind: Task
spec:
  stepTemplate: {image: quay.io/k/template:1}
  sidecars: [{name: s, image: quay.io/k/side:1}]
---
apiVersion: tekton.dev/v1beta1
kind: ClusterTask
spec:
  steps: [{name: s, image: quay.io/k/cstep:1}]
  sidecars: [{name: s, image: quay.io/k/cside:1}]
  stepTemplate: {image: quay.io/k/ctemplate:1}
---
apiVersion: tekton.dev/v1
kind: Pipeline
spec:
  tasks: [{name: t, taskSpec: {sidecars: [{name: s, image: quay.io/k/pside:1}], stepTemplate: {image: quay.io/k/ptemplate:1}}}]
  finally: [{name: f, taskSpec: {steps: [{name: s, image: quay.io/k/final:1}]}}]
---
apiVersion: tekton.dev/v1
kind: TaskRun
spec:
  taskSpec: {steps: [{name: s, image: quay.io/k/run:1}]}
---
apiVersion: tekton.dev/v1
kind: PipelineRun
spec:
  pipelineSpec: {tasks: [{name: t, taskSpec: {steps: [{name: s, image: quay.io/k/prun:1}]}}]}
---
apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
spec:
  containers: [{name: c, image: quay.io/s/runtime:1}]
  workerSpec: {containers: [{name: w, image: quay.io/s/worker:1}]}
---
apiVersion: argoproj.io/v1alpha1
kind: ClusterAnalysisTemplate
spec:
  metrics: [{name: m, provider: {job: {spec: {template: {spec: {containers: [{name: j, image: quay.io/r/job:1}]}}}}}}]
---
apiVersion: troubleshoot.sh/v1beta2
kind: Preflight
spec:
  collectors:
  - dns: {image: quay.io/t/agnhost:1}
  - goldpinger: {podLaunchOptions: {image: quay.io/t/goldpinger:1}}
"""


def test_synthetic_documents_cover_the_entries_the_corpus_lacks():
    from rewriter.manifest.document import parse
    from rewriter.manifest.stream import split

    found: collections.Counter[str] = collections.Counter()
    for chunk in split(SYNTHETIC.encode())[1]:
        for resource in parse(chunk).resources():
            for entry in [*TABLE.pod_specs[4:], *TABLE.images]:
                single = (
                    FieldTable(pod_specs=(entry,))
                    if isinstance(entry, PodSpecField)
                    else FieldTable(pod_specs=(), images=(entry,))
                )
                found[key(entry)] += sum(1 for _ in find_images(resource, single))
    assert {k for k in NOT_IN_CORPUS if found[k] == 0} == set()


def test_kinds_of_other_projects_are_not_matched():
    from rewriter.manifest.document import parse
    from rewriter.manifest.stream import split

    text = "apiVersion: example.com/v1\nkind: Task\nspec: {steps: [{image: quay.io/x/y:1}]}\n"
    (chunk,) = split(text.encode())[1]
    (resource,) = parse(chunk).resources()
    assert list(find_images(resource, TABLE)) == []

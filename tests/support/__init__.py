"""What the tests share: loopback servers (registries, faultserver, tokenserver, kubeapi),
the real hosts' binaries (hostbins, kustomizehost), kubectl as the oracle (kubeoracle)
and small helpers (helpers). Imported as `support.<module>`; the places tests read from
are named here once."""

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent  # the repository
FIXTURES = TESTS / "fixtures"
CORPUS = ROOT.parent / "shared" / "corpus"  # ../shared/corpus, read-only
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")  # and lower case

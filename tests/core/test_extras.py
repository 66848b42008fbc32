"""A feature whose optional dependency is missing says which extra installs it, in one line."""

from __future__ import annotations

import sys

import pytest

from ppdistill.bench.execute import _run_ray
from ppdistill.core.errors import MissingExtraError
from ppdistill.core.extras import require_extra
from ppdistill.integrations.zoo import register


def test_require_extra_returns_the_module_or_names_the_extra():
    assert require_extra("json", "none", "a test").dumps([]) == "[]"
    with pytest.raises(MissingExtraError) as exc_info:
        require_extra("ppdistill_no_such_module", "atari", "environment X")
    message = str(exc_info.value)
    assert message == (
        "environment X needs the optional extra [atari] (module 'ppdistill_no_such_module' not found): "
        "run pip install 'ppdistill[atari]'"
    )
    assert exc_info.value.extra == "atari"
    with pytest.raises(MissingExtraError, match=r"run make install-procgen$"):
        require_extra("ppdistill_no_such_module", "procgen", "procgen", hint="make install-procgen")


@pytest.mark.parametrize(
    ("module", "extra", "use"),
    [
        ("rl_zoo3", "zoo", register),
        ("ray", "ray", lambda: list(_run_ray([], jobs=1, address=None))),
    ],
)
def test_each_optional_feature_names_its_extra(monkeypatch, module, extra, use):
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # import now fails, as when it is not installed
    with pytest.raises(MissingExtraError, match=rf"\[{extra}\]"):
        use()

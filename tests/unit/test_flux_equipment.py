"""chartguard_testing.flux: Flux's controllers not built is a failure naming the target that
builds them (CI builds them; a test never skips for want of them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chartguard_testing import flux, tools


@pytest.mark.parametrize("name", [flux.SOURCE_CONTROLLER, flux.HELM_CONTROLLER,
                                  flux.SOURCE_CRDS])
def test_a_missing_flux_binary_or_crd_file_names_make_flux_controllers(
        name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools, "TOOLS_DIR", tmp_path)
    with pytest.raises(tools.ToolMissingError, match=r"run `make flux-controllers`"):
        flux.find(name)
    (tmp_path / name).write_text("")
    assert flux.find(name) == tmp_path / name

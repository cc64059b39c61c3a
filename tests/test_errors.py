"""One exception base: ``except luzia.LuziaError`` catches what luzia and its controllers raise."""

from __future__ import annotations

from pathlib import Path

import pytest

import luzia
from controllers.errors import ControllerError, InvalidInput
from controllers.image import build_agent_image
from luzia import workspace


def test_luzia_error_catches_a_controller_error() -> None:
    with pytest.raises(luzia.LuziaError) as caught:
        build_agent_image("Not A Tag")  # rejected before Docker is asked
    assert isinstance(caught.value, InvalidInput)
    assert isinstance(caught.value, ControllerError) and caught.value.exit_code == 1


def test_luzia_error_catches_a_luzia_error(tmp_path: Path) -> None:
    with pytest.raises(luzia.LuziaError) as caught:
        workspace.diff(tmp_path, "job1")
    assert isinstance(caught.value, workspace.NotAGitWorkspace)
    assert not isinstance(caught.value, ControllerError)
    assert caught.value.exit_code == 1 and luzia.UsageError("x").exit_code == 2

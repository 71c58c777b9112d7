"""What `run.sh` installs into an existing environment (SADTALKER_VENV): only the requirements that are missing.

    python scripts/venv_requirements.py requirements.txt MISSING_OUT CONSTRAINTS_OUT

Run with the environment's own interpreter. Writes the requirement lines of packages not installed at all to
MISSING_OUT, and every installed distribution as `name==version` to CONSTRAINTS_OUT (pip's `-c`), so installing
the missing ones can never replace what is there (torch above all). Installed packages whose version differs
from requirements.txt are kept and named on stderr; for torch it says what the service may then lack.
Standard library plus the `packaging` that pip vendors; no network.
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

try:
    from packaging.requirements import InvalidRequirement, Requirement
except ImportError:  # an environment without packaging: pip always vendors it
    from pip._vendor.packaging.requirements import InvalidRequirement, Requirement

TORCH_NOTE = ("run.sh: keeping the installed torch {have} (requirements.txt pins {want}); the service is built "
              "and tested on {want}: an older torch may lack what it uses (torch.load(weights_only=True), "
              "safetensors loading, CUDA kernels of this GPU). Install {want} yourself when jobs fail.")


def requirement_lines(path: Path) -> list[str]:
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #")[0].strip()
        if line and not line.startswith(("#", "-")):
            lines.append(line)
    return lines


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def plan(lines: list[str], version_of=installed_version) -> tuple[list[str], list[str]]:
    """(requirement lines to install, notes about kept packages whose version differs)."""
    missing, notes = [], []
    for line in lines:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            notes.append(f"run.sh: cannot read the requirement {line!r}; skipped")
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        have = version_of(req.name)
        if have is None:
            missing.append(line)
        elif req.specifier and not req.specifier.contains(have, prereleases=True):
            if req.name.lower() == "torch":
                notes.append(TORCH_NOTE.format(have=have, want=str(req.specifier)))
            else:
                notes.append(f"run.sh: keeping the installed {req.name} {have} (requirements.txt wants {req.specifier})")
    return missing, notes


def installed_pins() -> list[str]:
    """Every installed distribution as name==version (pip constraints: nothing installed may change)."""
    pins: dict[str, str] = {}
    for dist in metadata.distributions():  # in sys.path order: the first one found is the one imported
        name = dist.metadata.get("Name")
        if name and dist.version and name.lower() not in pins:
            pins[name.lower()] = f"{name}=={dist.version}"
    return sorted(pins.values())


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    missing, notes = plan(requirement_lines(Path(argv[1])))
    for note in notes:
        print(note, file=sys.stderr)
    Path(argv[2]).write_text("".join(line + "\n" for line in missing))
    Path(argv[3]).write_text("".join(pin + "\n" for pin in installed_pins()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Regenerate or check the shipped ABIs from a fresh compile of contracts/.

    python -m client.abi --refresh    # write client/abi/<Contract>.json
    python -m client.abi --check      # exit 1 if they differ from a fresh compile

Only the ABI is compiled (no bytecode: seconds instead of a minute), with the
pip-installed vyper and the import paths ape-vyper uses (the project root and the
installed packages, for snekmate), then normalised through ethpm-types exactly as
ape stores it in its artifacts. Always fresh: ape's compile cache misses edits of
imported modules.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from client.abi import ABI_DIR, CONTRACTS, load_abi

REPO = Path(__file__).resolve().parents[2]


def compiled_abis(project_path: Path = REPO) -> dict[str, list[dict]]:
    """ABIs of ``CONTRACTS`` compiled now from ``project_path``/contracts."""
    from ethpm_types import ABI
    from pydantic import TypeAdapter
    from vyper.compiler import compile_from_file_input
    from vyper.compiler.input_bundle import FilesystemInputBundle

    search = [project_path, *(Path(p) for p in sys.path if p and Path(p).is_dir())]
    bundle = FilesystemInputBundle(search)
    models = TypeAdapter(list[ABI])
    out = {}
    for name in CONTRACTS:
        source = bundle.load_file(project_path / "contracts" / f"{name}.vy")
        raw = compile_from_file_input(source, input_bundle=bundle, output_formats=["abi"])["abi"]
        out[name] = [item.model_dump(mode="json", by_alias=True, exclude_none=True)
                     for item in models.validate_python(raw)]
    return out


def render(abi: list[dict]) -> str:
    return json.dumps(abi, indent=1, sort_keys=True) + "\n"


def stale_abis(project_path: Path = REPO) -> dict[str, list[dict]]:
    """The fresh ABIs that differ from the shipped files, by contract name."""
    return {name: abi for name, abi in compiled_abis(project_path).items()
            if not (ABI_DIR / f"{name}.json").exists() or (ABI_DIR / f"{name}.json").read_text() != render(abi)}


@click.command()
@click.option("--refresh", "mode", flag_value="refresh", help="Rewrite the shipped ABI files.")
@click.option("--check", "mode", flag_value="check", default=True, help="Compare only (default).")
@click.option("--project", "project_path", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=REPO, show_default=True, help="Project root holding contracts/.")
def main(mode: str, project_path: Path) -> None:
    """Refresh or check client/abi/*.json against a fresh compile."""
    stale = stale_abis(project_path)
    if mode == "refresh":
        for name, abi in stale.items():
            (ABI_DIR / f"{name}.json").write_text(render(abi))
        load_abi.cache_clear()
        click.echo(f"refreshed: {', '.join(stale) or 'nothing (already current)'}")
    elif stale:
        click.echo(f"stale ABIs: {', '.join(stale)}; run python -m client.abi --refresh", err=True)
        sys.exit(1)
    else:
        click.echo("ABIs current")


if __name__ == "__main__":
    main()

"""`edge-agent models ...`: see, check and download the files in the data manifest.

A technician at a site needs to know at once whether the model is there and intact, and how to
get it if not; these commands answer that without starting the agent. Exit 2 when a file is
missing, wrong or cannot be downloaded (README: a model is input), with the reason on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

from edge_agent import datafiles
from edge_agent.cli.common import EXIT_BAD_INPUT, EXIT_OK
from edge_agent.datafiles import DataFileError, Manifest, MediaEntry, ModelEntry

Entry = ModelEntry | MediaEntry


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list, verify and fetch models and sample media",
        description="Models and sample media listed in the data manifest "
        f"(override with ${datafiles.MANIFEST_ENV}). Files are searched in "
        f"${datafiles.MODEL_PATH_ENV} / ${datafiles.MEDIA_PATH_ENV} (colon-separated), "
        "then in the per-user cache, then in "
        + " and ".join(f"{root}/{{models,media}}" for root in datafiles.SYSTEM_DATA_DIRS)
        + ".",
    )
    actions = parser.add_subparsers(dest="models_action", metavar="ACTION", required=True)

    list_parser = actions.add_parser(
        "list",
        help="show each entry, where it was found, licence; for a missing or wrong one, "
        "the file and sha256 it needs",
    )
    list_parser.set_defaults(handler=list_handler)

    verify_parser = actions.add_parser("verify", help="check sha256 of entries (all by default)")
    verify_parser.add_argument(
        "names", nargs="*", metavar="NAME", help="entries to check (default: all)"
    )
    verify_parser.set_defaults(handler=verify_handler)

    fetch_parser = actions.add_parser(
        "fetch", help="download entries (all missing ones by default) and verify them"
    )
    fetch_parser.add_argument(
        "names", nargs="*", metavar="NAME", help="entries to fetch (default: all missing ones)"
    )
    fetch_parser.add_argument(
        "--dir",
        "--dest",
        dest="dest",
        type=Path,
        default=None,
        metavar="DIR",
        help="directory to download into (default: the per-user cache); for a service, "
        f"{datafiles.SYSTEM_DATA_DIRS[0]}/models is on its search path",
    )
    fetch_parser.set_defaults(handler=fetch_handler)


def _status(entry: Entry) -> tuple[bool, str]:
    """(ok, human status) of the first copy of ``entry`` on the search path."""
    path = datafiles.locate(entry)
    wanted = f"{entry.file}, sha256 {entry.sha256}"  # what to copy in, to compare by hand
    if path is None:
        return False, f"missing: needs {wanted}"
    try:
        datafiles.verify_file(entry, path)
    except DataFileError:
        return False, f"WRONG FILE {path}: needs {wanted}"
    return True, f"ok {path}"


def _select(manifest: Manifest, names: list[str]) -> list[Entry]:
    if not names:
        return list(manifest.entries)
    return [manifest.find(name) for name in names]


def _named_entries(names: list[str]) -> list[Entry] | None:
    """The manifest entries ``names`` asks for (all without names); None, said on stderr,
    when the manifest cannot be read or a name is not in it."""
    try:
        return _select(datafiles.load_manifest(), names)
    except DataFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def list_handler(args: argparse.Namespace) -> int:
    try:
        manifest = datafiles.load_manifest()
    except DataFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    rows = [(e.name, e.kind, _status(e)[1], e.licence) for e in manifest.entries]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for name, kind, status, licence in rows:
        print(f"{name:<{widths[0]}}  {kind:<{widths[1]}}  {licence:<10}  {status}")
    return EXIT_OK


def _report(entry: Entry, verb: str, find: Callable[[], Path]) -> bool:
    """Print ``verb``, the entry and the path ``find`` gives, or FAIL and why on stderr
    (then False)."""
    try:
        path = find()
    except DataFileError as exc:
        print(f"FAIL {entry.name}: {exc}", file=sys.stderr)
        return False
    print(f"{verb:<4} {entry.name}  {path}")
    return True


def verify_handler(args: argparse.Namespace) -> int:
    entries = _named_entries(args.names)
    if entries is None:
        return EXIT_BAD_INPUT
    failures = 0
    for entry in entries:
        if not _report(entry, "ok", partial(datafiles.resolve_entry, entry)):
            failures += 1
    return EXIT_BAD_INPUT if failures else EXIT_OK


def fetch_handler(args: argparse.Namespace) -> int:
    entries = _named_entries(args.names)
    if entries is None:
        return EXIT_BAD_INPUT
    dest_dir: Path | None = args.dest
    failures = fetched = 0
    for entry in entries:
        present = dest_dir / entry.file if dest_dir is not None else datafiles.locate(entry)
        if present is not None and present.is_file():
            try:
                datafiles.verify_file(entry, present)
                print(f"have {entry.name}  {present}")
                continue
            except DataFileError:
                pass  # a wrong copy: fetch replaces it (in the cache or --dir)
        if not entry.downloadable and not args.names:
            print(f"skip {entry.name}: no download for the exact file (see manifest notes)")
            continue
        if _report(entry, "got", partial(datafiles.fetch, entry, dest_dir=dest_dir)):
            fetched += 1
        else:
            failures += 1
    if fetched and dest_dir is not None and not _searched(dest_dir):
        print(
            f"note: {dest_dir} is not on the search path; set "
            f"{datafiles.MODEL_PATH_ENV} / {datafiles.MEDIA_PATH_ENV} to it",
            file=sys.stderr,
        )
    return EXIT_BAD_INPUT if failures else EXIT_OK


def _searched(directory: Path) -> bool:
    """Whether the agent will look in ``directory`` for models or media."""
    wanted = directory.resolve()
    dirs = [*datafiles.search_dirs("model"), *datafiles.search_dirs("media")]
    return any(d.resolve() == wanted for d in dirs)

"""Manifest validation, search path, checksums and fetching, on small files made here."""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import urllib.error
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakes.manifest import model_entry

from edge_agent import datafiles
from edge_agent.datafiles import ChecksumMismatch, DataFileError, DataFileNotFound

MODEL_BYTES = b"not really a model, but bytes with a known digest\n" * 10
MEDIA_BYTES = b"\x00\x01fake video\xff" * 50


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _media_entry(file_name: str, data: bytes, source_url: str) -> dict[str, Any]:
    return {
        "name": file_name,
        "kind": "media",
        "file": file_name,
        "sha256": _sha(data),
        "bytes": len(data),
        "source_url": source_url,
        "licence": "CC-BY-4.0",
    }


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A private manifest, upstream dir (served as file://), search dirs and cache."""
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    (upstream / "tiny.tflite").write_bytes(MODEL_BYTES)
    (upstream / "clip.mp4").write_bytes(MEDIA_BYTES)
    manifest = {
        "version": 1,
        "entries": [
            model_entry("tiny", MODEL_BYTES, (upstream / "tiny.tflite").as_uri()),
            model_entry("pinned", MODEL_BYTES, "https://example.invalid/x", downloadable=False),
            _media_entry("clip.mp4", MEDIA_BYTES, (upstream / "clip.mp4").as_uri()),
        ],
    }
    manifest_path = tmp_path / "manifest.yaml"
    manifest_path.write_text(yaml.safe_dump(manifest))
    dirs = {
        "upstream": upstream,
        "manifest": manifest_path,
        "models_a": tmp_path / "models_a",
        "models_b": tmp_path / "models_b",
        "media": tmp_path / "media",
        "cache": tmp_path / "cache",
        "system": tmp_path / "system",
    }
    for key in ("models_a", "models_b", "media"):
        dirs[key].mkdir()
    monkeypatch.setattr(datafiles, "SYSTEM_DATA_DIRS", (dirs["system"],))
    monkeypatch.setenv(datafiles.MANIFEST_ENV, str(manifest_path))
    monkeypatch.setenv(
        datafiles.MODEL_PATH_ENV, os.pathsep.join([str(dirs["models_a"]), str(dirs["models_b"])])
    )
    monkeypatch.setenv(datafiles.MEDIA_PATH_ENV, str(dirs["media"]))
    monkeypatch.setenv(datafiles.CACHE_DIR_ENV, str(dirs["cache"]))
    return dirs


# -- the project's own manifest


def test_project_manifest_is_valid_and_complete(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(datafiles.MANIFEST_ENV, raising=False)
    manifest = datafiles.load_manifest()
    ssd = manifest.model("ssd_mobilenet_v1")
    yolox = manifest.model("yolox_nano")
    assert (ssd.format, ssd.input_width, ssd.input_dtype) == ("ssd_postprocess", 300, "uint8")
    assert (yolox.format, yolox.input_width, yolox.input_dtype) == ("yolox", 416, "float32")
    assert not yolox.downloadable and "unverified" in yolox.notes.lower()
    media = {e.file for e in manifest.entries if e.kind == "media"}
    assert {
        "automl_traffic_frames.mp4",
        "coral_grace_hopper.bmp",
        "intel_one-by-one-person-detection.mp4",
    } <= media
    for entry in manifest.entries:
        assert entry.source_url.startswith("https://"), entry.name


# -- validation


def _write_manifest(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"version": 1, "entries": entries}))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "blue"}, "colour"),  # extra="forbid"
        ({"sha256": "abc"}, "sha256"),
        ({"format": "onnx"}, "format"),
        ({"file": "../escape.tflite"}, "file"),
        ({"source_url": "ftp://x"}, "source_url"),
    ],
)
def test_invalid_entries_are_rejected_with_the_field_named(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    entry = model_entry("m", MODEL_BYTES, "https://example.invalid/m") | change
    path = _write_manifest(tmp_path / "m.yaml", [entry])
    with pytest.raises(DataFileError, match=message):
        datafiles.load_manifest(path)


def test_media_entry_cannot_carry_model_fields(tmp_path: Path) -> None:
    entry = _media_entry("a.mp4", MEDIA_BYTES, "https://example.invalid/a") | {"format": "yolox"}
    with pytest.raises(DataFileError, match="format"):
        datafiles.load_manifest(_write_manifest(tmp_path / "m.yaml", [entry]))


def test_model_entry_needs_model_fields(tmp_path: Path) -> None:
    entry = model_entry("m", MODEL_BYTES, "https://example.invalid/m")
    del entry["input_dtype"]
    with pytest.raises(DataFileError, match="input_dtype"):
        datafiles.load_manifest(_write_manifest(tmp_path / "m.yaml", [entry]))


def test_duplicate_names_are_rejected(tmp_path: Path) -> None:
    entry = model_entry("m", MODEL_BYTES, "https://example.invalid/m")
    other = entry | {"file": "other.tflite"}
    with pytest.raises(DataFileError, match="duplicate name"):
        datafiles.load_manifest(_write_manifest(tmp_path / "m.yaml", [entry, other]))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models:\n  - " + "[" * 3000 + "]" * 3000 + "\n", "nested deeper than 64 levels"),
        ("models: []\nmedia: []\nmodels: []\n", "'models' given twice"),
    ],
)
def test_a_manifest_that_cannot_be_read_as_one_is_a_data_file_error(
    tmp_path: Path, text: str, message: str
) -> None:
    """$EDGE_AGENT_MANIFEST nested 3,000 deep was a RecursionError traceback from
    check-config; a second `models:` silently replaced the first list."""
    path = tmp_path / "manifest.yaml"
    path.write_text(text)
    with pytest.raises(DataFileError, match=message):
        datafiles.load_manifest(path)


def test_missing_manifest_names_the_env_var(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=datafiles.MANIFEST_ENV):
        datafiles.load_manifest(tmp_path / "nope.yaml")


# -- search path


def test_search_path_order_env_dirs_then_cache(env: dict[str, Path]) -> None:
    (env["models_b"] / "tiny.tflite").write_bytes(MODEL_BYTES)
    assert datafiles.resolve_model_file("tiny") == env["models_b"] / "tiny.tflite"
    (env["models_a"] / "tiny.tflite").write_bytes(MODEL_BYTES)
    assert datafiles.resolve_model_file("tiny") == env["models_a"] / "tiny.tflite"
    assert datafiles.search_dirs("model")[-2:] == [
        env["cache"] / "models",
        env["system"] / "models",
    ]


def test_a_system_directory_is_searched_after_the_cache(
    env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service user has no cache of its own: it finds what an admin put in /var/lib."""
    monkeypatch.delenv(datafiles.MODEL_PATH_ENV)
    system_copy = env["system"] / "models" / "tiny.tflite"
    system_copy.parent.mkdir(parents=True)
    system_copy.write_bytes(MODEL_BYTES)
    assert datafiles.resolve_model_file("tiny") == system_copy
    cached = env["cache"] / "models" / "tiny.tflite"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(MODEL_BYTES)
    assert datafiles.resolve_model_file("tiny") == cached


def test_the_shipped_manifest_is_package_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(datafiles.MANIFEST_ENV, raising=False)
    path = datafiles.manifest_path()
    assert path.parts[-3:] == ("edge_agent", "data", "manifest.yaml")
    assert datafiles.load_manifest(path).model("ssd_mobilenet_v1")


def test_cache_is_searched_when_env_unset(
    env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(datafiles.MODEL_PATH_ENV)
    cached = env["cache"] / "models" / "tiny.tflite"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(MODEL_BYTES)
    assert datafiles.resolve_model_file("tiny") == cached


def test_cache_dir_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(datafiles.CACHE_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert datafiles.cache_dir() == tmp_path / "xdg" / "edge_agent"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert datafiles.cache_dir() == tmp_path / "home" / ".cache" / "edge_agent"


def test_missing_file_message_says_where_and_how(env: dict[str, Path]) -> None:
    with pytest.raises(DataFileNotFound) as caught:
        datafiles.resolve_model_file("tiny")
    message = str(caught.value)
    assert str(env["models_a"]) in message and str(env["models_b"]) in message
    assert str(env["cache"] / "models") in message
    assert "edge-agent models fetch tiny" in message
    assert datafiles.MODEL_PATH_ENV in message


def test_missing_undownloadable_file_does_not_suggest_fetch(env: dict[str, Path]) -> None:
    with pytest.raises(DataFileNotFound) as caught:
        datafiles.resolve_model_file("pinned")
    assert "models fetch" not in str(caught.value)
    assert datafiles.MODEL_PATH_ENV in str(caught.value)


def test_unknown_name_lists_known_entries(env: dict[str, Path]) -> None:
    with pytest.raises(DataFileNotFound, match="tiny"):
        datafiles.resolve_model_file("resnet")


def test_media_name_is_not_a_model(env: dict[str, Path]) -> None:
    with pytest.raises(DataFileError, match="not a model"):
        datafiles.resolve_model_file("clip.mp4")


# -- checksums


def test_same_size_wrong_content_is_a_checksum_mismatch(env: dict[str, Path]) -> None:
    wrong = bytes(len(MODEL_BYTES))
    (env["models_a"] / "tiny.tflite").write_bytes(wrong)
    with pytest.raises(ChecksumMismatch) as caught:
        datafiles.resolve_model_file("tiny")
    message = str(caught.value)
    assert _sha(wrong) in message and _sha(MODEL_BYTES) in message
    assert "edge-agent models fetch tiny" in message


def test_truncated_file_is_reported_by_size(env: dict[str, Path]) -> None:
    (env["models_a"] / "tiny.tflite").write_bytes(MODEL_BYTES[:-7])
    with pytest.raises(ChecksumMismatch, match=f"expected {len(MODEL_BYTES)}"):
        datafiles.resolve_model_file("tiny")


def test_digest_cache_notices_a_replaced_file(env: dict[str, Path]) -> None:
    path = env["models_a"] / "tiny.tflite"
    path.write_bytes(MODEL_BYTES)
    assert datafiles.resolve_model_file("tiny") == path
    path.write_bytes(bytes(len(MODEL_BYTES)))  # same size, new content
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(ChecksumMismatch):
        datafiles.resolve_model_file("tiny")


# -- fetching


def test_fetch_file_url_into_dest_dir(env: dict[str, Path], tmp_path: Path) -> None:
    entry = datafiles.load_manifest().model("tiny")
    dest = tmp_path / "dest"
    path = datafiles.fetch(entry, dest_dir=dest)
    assert path == dest / "tiny.tflite"
    assert path.read_bytes() == MODEL_BYTES
    assert sorted(p.name for p in dest.iterdir()) == ["tiny.tflite"]  # no temp file left
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # a service user can read root's fetch


def test_fetch_defaults_to_the_cache_and_resolves_from_there(env: dict[str, Path]) -> None:
    entry = datafiles.load_manifest().model("tiny")
    path = datafiles.fetch(entry)
    assert path == env["cache"] / "models" / "tiny.tflite"
    assert datafiles.resolve_model_file("tiny") == path


def test_fetch_of_wrong_bytes_leaves_nothing_behind(env: dict[str, Path], tmp_path: Path) -> None:
    (env["upstream"] / "tiny.tflite").write_bytes(MODEL_BYTES[:-1] + b"?")
    entry = datafiles.load_manifest().model("tiny")
    dest = tmp_path / "dest"
    with pytest.raises(ChecksumMismatch, match="does not match the manifest"):
        datafiles.fetch(entry, dest_dir=dest)
    assert list(dest.iterdir()) == []


def test_fetch_of_missing_url_is_a_data_file_error(env: dict[str, Path], tmp_path: Path) -> None:
    (env["upstream"] / "tiny.tflite").unlink()
    entry = datafiles.load_manifest().model("tiny")
    with pytest.raises(DataFileError, match="cannot download"):
        datafiles.fetch(entry, dest_dir=tmp_path / "dest")
    assert list((tmp_path / "dest").iterdir()) == []


def test_fetch_without_network_says_what_where_and_how_to_do_without(
    env: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_dns(url: str, timeout: float) -> None:
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(datafiles.urllib.request, "urlopen", no_dns)
    entry = datafiles.load_manifest().model("tiny")
    with pytest.raises(datafiles.DownloadFailed) as caught:
        datafiles.fetch(entry, dest_dir=tmp_path / "dest")
    message = str(caught.value)
    assert "\n" not in message
    assert "model tiny" in message and entry.source_url in message
    assert "Temporary failure in name resolution" in message
    assert datafiles.MODEL_PATH_ENV in message and str(env["system"] / "models") in message
    assert list((tmp_path / "dest").iterdir()) == []


def test_fetch_into_a_directory_it_cannot_create_is_a_data_file_error(
    env: dict[str, Path], tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    entry = datafiles.load_manifest().model("tiny")
    with pytest.raises(DataFileError, match="cannot write into"):
        datafiles.fetch(entry, dest_dir=blocker / "models")


def test_fetch_refuses_undownloadable_entries(env: dict[str, Path], tmp_path: Path) -> None:
    entry = datafiles.load_manifest().model("pinned")
    with pytest.raises(DataFileError, match="cannot be fetched"):
        datafiles.fetch(entry, dest_dir=tmp_path / "dest")


def test_resolve_media_fetches_only_when_allowed(env: dict[str, Path]) -> None:
    with pytest.raises(DataFileNotFound):
        datafiles.resolve_media("clip.mp4")
    assert not (env["cache"] / "media").exists()
    path = datafiles.resolve_media("clip.mp4", allow_fetch=True)
    assert path == env["cache"] / "media" / "clip.mp4"
    assert path.read_bytes() == MEDIA_BYTES
    assert datafiles.resolve_media("clip.mp4") == path


def test_resolve_media_prefers_the_media_path(env: dict[str, Path]) -> None:
    (env["media"] / "clip.mp4").write_bytes(MEDIA_BYTES)
    assert datafiles.resolve_media("clip.mp4", allow_fetch=True) == env["media"] / "clip.mp4"
    assert not (env["cache"] / "media").exists()


# -- `edge-agent models ...` handlers


def _run_models(argv: list[str]) -> int:
    from edge_agent.cli import build_parser

    args = build_parser().parse_args(["models", *argv])
    result: int = args.handler(args)
    return result


def test_models_list_shows_found_and_missing(
    env: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    (env["models_b"] / "tiny.tflite").write_bytes(MODEL_BYTES)
    assert _run_models(["list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert f"ok {env['models_b'] / 'tiny.tflite'}" in lines["tiny"]
    assert "Apache-2.0" in lines["tiny"]
    # What a technician copying files by hand needs: the file name and its sha256.
    clip = datafiles.load_manifest().find("clip.mp4")
    assert lines["clip.mp4"].endswith(f"missing: needs clip.mp4, sha256 {clip.sha256}")
    (env["models_b"] / "tiny.tflite").write_bytes(b"not the model")
    assert _run_models(["list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert f"WRONG FILE {env['models_b'] / 'tiny.tflite'}: needs tiny.tflite" in lines["tiny"]


def test_models_verify_fails_on_missing_or_wrong(
    env: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    (env["models_a"] / "tiny.tflite").write_bytes(MODEL_BYTES)
    assert _run_models(["verify", "tiny"]) == 0
    assert _run_models(["verify", "tiny", "clip.mp4"]) == 2  # README: a bad model/file is 2
    assert "FAIL clip.mp4" in capsys.readouterr().err
    (env["models_a"] / "tiny.tflite").write_bytes(b"x")
    assert _run_models(["verify", "tiny"]) == 2
    assert _run_models(["verify", "no-such-thing"]) == 2


def test_models_fetch_downloads_missing_and_skips_pinned(
    env: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "dest"
    assert _run_models(["fetch", "--dest", str(dest)]) == 0
    out, err = capsys.readouterr()
    assert "not on the search path" in err
    assert (dest / "tiny.tflite").read_bytes() == MODEL_BYTES
    assert (dest / "clip.mp4").read_bytes() == MEDIA_BYTES
    assert "skip pinned" in out
    assert _run_models(["fetch", "--dest", str(dest), "tiny"]) == 0
    assert "have tiny" in capsys.readouterr().out
    assert _run_models(["fetch", "--dest", str(dest), "pinned"]) == 2


def test_models_fetch_into_a_system_directory_is_found_there(
    env: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(datafiles.MODEL_PATH_ENV)
    system_models = env["system"] / "models"
    assert _run_models(["fetch", "--dir", str(system_models), "tiny"]) == 0
    assert "not on the search path" not in capsys.readouterr().err
    assert datafiles.resolve_model_file("tiny") == system_models / "tiny.tflite"

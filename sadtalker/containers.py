"""Media containers recognised by their first bytes (never by name or declared type), and the ffmpeg input
arguments that open a file as exactly that container and nothing else.

Playlists and manifests (HLS, DASH, ffconcat, SDP, ...) are never recognised: ffmpeg would follow the paths
and URLs inside them. Every ffmpeg run on a caller's file forces the demuxer found here (`-f`) and allows only
the `file` protocol (plus `pipe` for our own streams), so a crafted file cannot make ffmpeg open another file
or the network.
"""

from __future__ import annotations

from pathlib import Path

SNIFF_BYTES = 16
# ffmpeg demuxer names by what a caller may send.
AUDIO_DEMUXERS = ("wav", "mp3", "aac", "mov", "ogg", "flac", "matroska")  # mov: M4A/MP4; matroska: WebM
VIDEO_DEMUXERS = ("mov", "matroska", "avi")  # MP4/MOV, WebM/MKV, AVI
DESCRIBED = {"wav": "WAV", "mp3": "MP3", "aac": "AAC", "mov": "MP4/MOV/M4A", "ogg": "OGG/Opus", "flac": "FLAC",
             "matroska": "WebM/MKV", "avi": "AVI"}
MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")  # first box of MP4/MOV files


def sniff(head: bytes) -> str | None:
    """The ffmpeg demuxer for a file starting with `head` (at least SNIFF_BYTES), or None if not allowed."""
    if head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # an MPEG audio frame sync
        return "aac" if head[1] & 0x06 == 0 else "mp3"  # layer bits 00: an ADTS (AAC) header
    if head[4:8] in MP4_BOXES:
        return "mov"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: Matroska and WebM
        return "matroska"
    return None


def sniff_file(path: Path) -> str | None:
    with Path(path).open("rb") as f:
        return sniff(f.read(SNIFF_BYTES))


def describe(demuxers: tuple[str, ...]) -> str:
    return ", ".join(dict.fromkeys(DESCRIBED[name] for name in demuxers))


def ffmpeg_input(path: Path, demuxer: str) -> list[str]:
    """`-i` for a caller's file: only the file protocol, the container forced, the path never taken for a URL
    or an option (`file:` prefix)."""
    return ["-protocol_whitelist", "file", "-f", demuxer, "-i", f"file:{Path(path).resolve()}"]

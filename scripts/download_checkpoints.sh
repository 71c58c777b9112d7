#!/usr/bin/env bash
# Fetches the official SadTalker release files into $SADTALKER_CHECKPOINT_DIR (default: checkpoints/ of the
# project) and the face-model files into its gfpgan/weights/. Files already present are kept.
# Needs internet access to github.com; fails with a clear message where there is none.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${SADTALKER_CHECKPOINT_DIR:-$HERE/checkpoints}"
SADTALKER=https://github.com/OpenTalker/SadTalker/releases/download/v0.0.2-rc
FACEXLIB=https://github.com/xinntao/facexlib/releases/download
GFPGAN=https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0

FILES=(
  "$SADTALKER/SadTalker_V0.0.2_256.safetensors|."
  "$SADTALKER/SadTalker_V0.0.2_512.safetensors|."
  "$SADTALKER/mapping_00109-model.pth.tar|."
  "$SADTALKER/mapping_00229-model.pth.tar|."
  "$FACEXLIB/v0.1.0/detection_Resnet50_Final.pth|gfpgan/weights"
  "$FACEXLIB/v0.1.0/alignment_WFLW_4HG.pth|gfpgan/weights"
  "$FACEXLIB/v0.2.2/parsing_parsenet.pth|gfpgan/weights"
  "$GFPGAN/GFPGANv1.4.pth|gfpgan/weights"
)

fetch() {  # url dest: resumable download through a .part file, so an interrupted run never leaves half a file
  if command -v curl >/dev/null 2>&1; then
    curl -fL --retry 3 --connect-timeout 20 -C - -o "$2.part" "$1"
  else
    wget -q --tries=3 --timeout=20 -c -O "$2.part" "$1"
  fi && mv "$2.part" "$2"
}

if ! command -v curl >/dev/null 2>&1 && ! command -v wget >/dev/null 2>&1; then
  echo "download_checkpoints.sh: needs curl or wget" >&2
  exit 2
fi
if ! { curl -fsSI --max-time 15 https://github.com >/dev/null 2>&1 || wget -q --spider --timeout=15 https://github.com 2>/dev/null; }; then
  echo "download_checkpoints.sh: github.com cannot be reached from this machine." >&2
  echo "Copy the files listed in README (Checkpoints) into $DEST by other means, or set SADTALKER_CHECKPOINT_DIR." >&2
  exit 3
fi

for entry in "${FILES[@]}"; do
  url="${entry%%|*}"
  dir="$DEST/${entry##*|}"
  name="$(basename "$url")"
  mkdir -p "$dir"
  if [ -s "$dir/$name" ]; then
    echo "have  $dir/$name"
    continue
  fi
  echo "fetch $url"
  if ! fetch "$url" "$dir/$name"; then
    echo "download_checkpoints.sh: failed to download $url (partial data kept in $dir/$name.part; rerun to resume)" >&2
    exit 4
  fi
done
echo "checkpoints ready in $DEST"

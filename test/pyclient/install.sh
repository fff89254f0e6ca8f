#!/usr/bin/env bash
# Installs the Python Hugging Face stack pinned in requirements.txt (beside
# this script) into a virtualenv at DIR, for the end-to-end tests of the
# mirror with real Python clients:
#
#   test/pyclient/install.sh DIR     then: export ALLMENDE_PYENV=DIR
#
# Needs python3 with its venv module (Debian: python3-venv). Wheels only,
# from PyPI. A virtualenv already installed from the same requirements.txt
# is kept as it is (a second); a fresh one takes about half a minute.
set -euo pipefail
if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
req="$(cd "$(dirname "$0")" && pwd)/requirements.txt"
dir=$1
stamp="$dir/allmende-requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && [ -x "$dir/bin/hf" ] &&
	"$dir/bin/python" -c 'import huggingface_hub, transformers' 2>/dev/null; then
	echo "python stack in $dir is current"
	exit 0
fi
# Debian's python3 needs its python3-venv package for this.
python3 -m venv --clear "$dir"
"$dir/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: --no-deps -r "$req"
"$dir/bin/pip" check --disable-pip-version-check
echo "$want" >"$stamp"
"$dir/bin/python" -c 'import importlib.metadata as m; print(" ".join(p + " " + m.version(p) for p in ("huggingface_hub", "transformers", "tokenizers", "safetensors", "numpy")))'

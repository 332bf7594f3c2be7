"""Print the headline figures of one run of the notebooks as a Markdown table.

    LM_STEPS_PROFILE=cpu python bench/bench_make_run.py    # runs every notebook; each records its figures
    python bench/results_table.py --profile cpu            # the table the README shows

Reads ``build/results-<profile>.json``, which the notebooks write with ``lm_steps.results.record``
as they run, so every figure in the table is one the notebooks measured and asserted in that run.
"""
from __future__ import annotations

import argparse
import json

from lm_steps.results import results_path


def _mean(x) -> float:
    """A number, or the mean of a list of them (one per seed)."""
    return sum(x) / len(x) if isinstance(x, (list, tuple)) else x


def _span(x, fmt: str) -> str:
    """``mean (min-max)`` of one figure per seed; a single number as it is."""
    if not isinstance(x, (list, tuple)):
        return format(x, fmt)
    return f"{format(_mean(x), fmt)} (seeds {format(min(x), fmt)}-{format(max(x), fmt)})"


def rows(results: dict) -> list[tuple[str, str, str]]:
    """(notebook, what, figure) for each record the notebooks wrote, in notebook order."""
    out = []
    for name, r in sorted(results.items()):
        data = f"{r.get('dataset', '')} {r.get('split', '')}".strip()
        if name.startswith("07 GPT variants"):
            v = r["variants"]
            figures = "; ".join(f"{k} {x['val_loss']:.4f} (seeds {min(x['vals']):.4f}-{max(x['vals']):.4f})"
                                for k, x in v.items())
            out.append((name, f"{data}, {r['steps']} steps x {len(r['seeds'])} seeds, val loss", figures))
        elif name.startswith("07 batched"):
            out.append((name, f"{r['prompts']} prompts x {r['new_tokens']} new tokens",
                        f"one batched call {r['batched_seconds']:.2f} s, one call per prompt {r['per_prompt_seconds']:.2f} s"))
        elif name.startswith("05b"):
            out.append((name, f"{data}, {r['vocab_size']:,}-token BPEs: bytes per token",
                        ", ".join(f"{k} {v:.3f}" for k, v in r["bytes_per_token"].items())
                        + f"; {r['never_seen']:,} tokens never in the GPT's text, the others' embedding norms "
                          f"{r['norm_ratio']:.2f}x theirs"))
        elif name.startswith("08 question"):
            kinds = {k[: -len("_accuracy")].replace("_", " "): v for k, v in r.items() if k.endswith("_accuracy")}
            out.append((name, f"{data}, {r['test_lines']:,} held-out lines, {r['steps']} steps, accuracy (mean of 3 seeds)",
                        ", ".join(f"{k} {v:.3f}" for k, v in kinds.items())))
        elif name.startswith("11"):
            out.append((name, f"{data}: held-out exact match; Shakespeare val loss after",
                        f"base {_mean(r['base_exact']):.1%}, full {_span(r['full_exact'], '.1%')}, LoRA "
                        f"{_span(r['lora_exact'], '.1%')} ({r['lora_trained']:,} of {r['full_trained']:,} parameters "
                        f"trained); Shakespeare {_mean(r['shakespeare_loss_before']):.4f} before, full "
                        f"{_span(r['shakespeare_loss_full'], '.4f')}, LoRA {_span(r['shakespeare_loss_lora'], '.4f')}"))
        elif name.startswith("08"):
            out.append((name, f"{data}, {r['blanks']:,} held-out blanks, accuracy",
                        f"encoder {r['blank_accuracy']:.3f}, GPT of the same size {r['gpt_blank_accuracy']:.3f}, "
                        f"encoder seeing the left side only {r['blank_accuracy_left_only']:.3f}"))
        elif name.startswith("09"):
            kinds = [k for k, x in r.items() if isinstance(x, dict)]
            out.append((name, f"{data}: MB of weights, val loss, tokens/s",
                        "; ".join(f"{k} {r[k]['mb']:.2f} MB, {r[k]['val_loss']:.4f}, {r[k]['tokens_per_s']}/s"
                                  for k in kinds)))
        elif name.startswith("10"):
            out.append((name, f"{data}: L(N, D) = E + A/N^alpha + B/D^beta",
                        f"alpha {r['alpha']:.3f}, beta {r['beta']:.3f}, fit rms {r['fit_rms']:.3f}; compute-optimal width "
                        f"{r['optimal_width']}: predicted {r['predicted']:.4f}, measured {r['measured_mean']:.4f} "
                        f"(seed spread {r['seed_spread']:.4f})"))
        elif "word_ppl" in r:
            out.append((name, f"{data}, {r['params']:,} params",
                        f"{r['nats_per_token']:.4f} nats/token, {r['bits_per_byte']:.4f} bits/byte, word perplexity "
                        f"{r['word_ppl']:.2f}"))
        elif "nats_per_char" in r:
            extra = f", test {r['test_nats_per_char']:.4f}" if "test_nats_per_char" in r else ""
            out.append((name, f"{data}, {r.get('params', 0):,} params",
                        f"{r['nats_per_char']:.4f} nats/char ({r['bits_per_char']:.4f} bits/char){extra}"))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    args = parser.parse_args(argv)
    path = results_path(args.profile)
    results = json.loads(path.read_text(encoding="utf-8"))
    print("| notebook | measured | figures |\n| --- | --- | --- |")
    for row in rows(results):
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()

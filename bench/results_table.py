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

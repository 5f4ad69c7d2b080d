"""``detection`` and ``fuzzing``: an LLM judges held-out examples given the explanation
(delphi's scorers); the score is the balanced accuracy of its verdicts.

- ``detection``: up to ``n_per_class`` activating and as many non-activating examples of the
  test set (negatives: hard ones first, then random), shown unmarked (the study's report,
  ``ExampleRenderer.plain``); the judge says which ones the feature is active in.
- ``fuzzing``: up to ``2 * n_per_class`` activating test examples, half shown with the marks
  where the latent really fires and half with the marks moved to random tokens of the same
  kinds and the region swapped (``ExampleRenderer.fuzzed``); the judge says which marks match
  the explanation. Examples whose text cannot be re-marked (no tokenizer) are left out.

Examples are shuffled (seeded by latent) and sent ``batch_size`` per request
(``prompts/detection_system.txt`` / ``fuzzing_system.txt`` + ``judge_user.txt``); the judge
answers a list of 1 / 0 (``parse.parse_verdicts``). A batch whose reply cannot be read is
counted (``n_unparsable``) and left out of the score, never guessed. The value is None when
the parsed verdicts lack one of the two classes.
"""

from __future__ import annotations

import asyncio

import numpy as np

from autointerp.explainers.base import Explanation
from autointerp.explainers.llm import spread
from autointerp.parse import parse_verdicts
from autointerp.prompts import load_prompt
from autointerp.sampling import LatentSample
from autointerp.scorers.base import SCORERS, Score, ScoreContext, Scorer
from radinterp.metrics import balanced_accuracy


class JudgeScorer(Scorer):
    """Shared by ``detection`` and ``fuzzing``: subclasses pick the (text, truth) items."""

    needs_llm = True
    system_prompt = ""

    def __init__(self, *, n_per_class: int = 5, batch_size: int = 10, seed: int = 0,
                 prompt_dir: str | None = None) -> None:
        """``n_per_class`` examples per class (fuzzing: true / moved marks), ``batch_size``
        examples per request, ``seed`` of the shuffle and of the moved marks, ``prompt_dir``
        a folder of edited prompt files (``prompts.load_prompt``)."""
        if n_per_class < 1 or batch_size < 1:
            raise ValueError(f"n_per_class={n_per_class}, batch_size={batch_size}; pass both >= 1")
        self.n_per_class, self.batch_size, self.seed = n_per_class, batch_size, seed
        self.prompt_dir = prompt_dir

    def items(self, sample: LatentSample, ctx: ScoreContext, rng: np.random.Generator
              ) -> tuple[list[tuple[str, bool]], int]:
        """(rendered example, truth) pairs, and how many examples could not be rendered."""
        raise NotImplementedError

    def score(self, explanation: Explanation, sample: LatentSample, ctx: ScoreContext) -> Score:
        from autointerp.clients.base import run_sync

        return run_sync(self.ascore(explanation, sample, ctx))

    def messages(self, explanation: str, batch: list[tuple[str, bool]]) -> list[dict]:
        n = len(batch)
        example = "[" + ", ".join(["1", "0"] * n)[: 3 * n - 2] + "]"
        system = load_prompt(self.system_prompt, self.prompt_dir).format(
            explanation=explanation, n=n, example=example)
        shown = "\n\n".join(f"Study {i}:\n{text}" for i, (text, _) in enumerate(batch, 1))
        user = load_prompt("judge_user", self.prompt_dir).format(examples=shown, n=n)
        return [{"role": "system", "content": system.strip()},
                {"role": "user", "content": user.strip()}]

    async def ascore(self, explanation: Explanation, sample: LatentSample,
                     ctx: ScoreContext) -> Score:
        if ctx.client is None or ctx.renderer is None:
            raise ValueError(f"the {self.name} scorer needs ScoreContext(client=..., "
                             "renderer=...); run it through run_autointerp or pass both")
        rng = np.random.default_rng([self.seed, sample.latent])
        items, n_skipped = self.items(sample, ctx, rng)
        items = [items[i] for i in rng.permutation(len(items))]
        batches = [items[i:i + self.batch_size] for i in range(0, len(items), self.batch_size)]
        replies = await asyncio.gather(*(ctx.client.chat(
            self.messages(explanation.text, b), max_tokens=4 * len(b) + 8, temperature=0.0)
            for b in batches))
        truth, pred, unparsable, raw = [], [], 0, []
        for b, reply in zip(batches, replies, strict=True):
            verdicts = parse_verdicts(reply.text, len(b))
            raw.append(reply.text)
            if verdicts is None:
                unparsable += len(b)
                continue
            truth += [t for _, t in b]
            pred += verdicts
        details = {"n_items": len(items), "n_skipped": n_skipped, "n_unparsable": unparsable,
                   "n_batches": len(batches), "n_parsed": len(pred),
                   "n_true": int(sum(truth)), "replies": raw}
        value = balanced_accuracy(np.array(truth), np.array(pred)) if pred else None
        if value is None:
            why = ("every judge reply was unparsable" if items and not pred else
                   "the judged examples lack one of the two classes")
            return Score(sample.latent, self.name, None, details, error=why)
        y, p = np.array(truth), np.array(pred)
        details.update(tpr=float(p[y].mean()), tnr=float((~p[~y]).mean()))
        return Score(sample.latent, self.name, value, details)


@SCORERS.register("detection")
class DetectionScorer(JudgeScorer):
    """See the module docstring."""

    name = "detection"
    system_prompt = "detection_system"

    def items(self, sample, ctx, rng):
        r = ctx.renderer
        act = spread([ex for ex in sample.test if ex.activation > 0], self.n_per_class)
        neg = [ex for ex in sample.test if ex.activation <= 0]
        neg = sorted(neg, key=lambda ex: ex.source != "hard")[: self.n_per_class]
        return [(r.plain(ex), True) for ex in act] + [(r.plain(ex), False) for ex in neg], 0


@SCORERS.register("fuzzing")
class FuzzingScorer(JudgeScorer):
    """See the module docstring."""

    name = "fuzzing"
    system_prompt = "fuzzing_system"

    def items(self, sample, ctx, rng):
        r = ctx.renderer
        act = spread([ex for ex in sample.test if ex.activation > 0], 2 * self.n_per_class)
        out, skipped = [], 0
        for i, ex in enumerate(act):
            fake = r.fuzzed(ex, rng)
            if fake is None:
                skipped += 1
            else:
                out.append((r.marked(ex), True) if i % 2 == 0 else (fake, False))
        return out, skipped


__all__ = ["DetectionScorer", "FuzzingScorer", "JudgeScorer"]

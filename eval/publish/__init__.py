"""Publishing SAEs (``radinterp publish``): SAELens or dictionary_learning layout, a model card
with the eval metrics, a load-back check, and a resumable Hub upload (token from the
environment only)."""

from eval.publish.run import PublishConfig, publish, stage_release

__all__ = ["PublishConfig", "publish", "stage_release"]

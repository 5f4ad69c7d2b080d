"""``radinterp label``: the command that labels report files (:mod:`eval.labeler.cli`).

The labeler itself, the label vocabulary and the agreement scores live in the core:
:mod:`radinterp.labels`.
"""

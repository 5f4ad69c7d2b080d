"""Study records and the data sources that produce them."""

from radinterp.data.study import Study

__all__ = ["Study"]

"""Dataset declarations, one :class:`DatasetSpec` per dataset, grouped by family."""

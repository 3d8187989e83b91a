"""Loaders that turn files on disk into a :class:`core_model.study.Study`."""

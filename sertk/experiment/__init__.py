"""The experiment: from embeddings to a report, and many experiments at once.

- :mod:`~sertk.experiment.config`: the run configuration (TOML, presets, ``-o`` options);
- :mod:`~sertk.experiment.pipeline`: one run, dataset to report (``sertk run``);
- :mod:`~sertk.experiment.normalize`: per-fold normalisation (none, global, speaker);
- :mod:`~sertk.experiment.metrics`, :mod:`~sertk.experiment.report`, :mod:`~sertk.experiment.plots`:
  scores with confidence intervals, report.json/report.md, figures;
- :mod:`~sertk.experiment.outputs`: run folders that never lose a user's file;
- :mod:`~sertk.experiment.model`: a trained pipeline saved for ``sertk predict``;
- :mod:`~sertk.experiment.sweep`, :mod:`~sertk.experiment.compare`: many runs from one TOML, and the
  table that compares them.
"""

"""Sources of the exercise notebooks (``NN_name.md``, jupytext MyST markdown).

``autograder.notebooks`` turns each source into an instructor notebook (the
reference code pasted from ``solutions``) and, with nbgrader, into the student
notebook committed under ``exercises/``.
"""

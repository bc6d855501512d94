// Keeps a library valid while a source filter leaves it empty.

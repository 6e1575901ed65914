"""Training (python -m fasthg.train): the loop (trainer.py), its options (options.py), training
checkpoints (checkpoints.py), the run's folder and what is written in it (run_folder.py, with the
curves and prediction grids of pictures.py)."""

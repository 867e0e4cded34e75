from lab_cnn.cli import run

run()

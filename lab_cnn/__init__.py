"""lab-cnn: the lab's MNIST CNNs in PyTorch Lightning."""

import os

# TensorBoard's writer imports TensorFlow when it is installed; keep its C++ start-up chatter quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from lab_cnn.data import MNISTDataModule  # noqa: E402
from lab_cnn.module import Classifier, LabNet  # noqa: E402

__all__ = ["Classifier", "LabNet", "MNISTDataModule"]

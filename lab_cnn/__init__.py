"""lab-cnn: the lab's MNIST CNNs in PyTorch Lightning."""

from lab_cnn.data import MNISTDataModule
from lab_cnn.module import Classifier, LabNet

__all__ = ["Classifier", "LabNet", "MNISTDataModule"]

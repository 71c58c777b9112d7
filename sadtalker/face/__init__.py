"""Third-party face models SadTalker runs, as our own PyTorch code loading the official weight files.

RetinaFace-R50 (boxes + 5 points), AWing FAN (98 -> 68 landmarks), ParseNet and GFPGAN v1.4 (the 2×
enhancer), with a dlib fallback for detection/landmarks when the official detector files are absent.
"""

from .analyzer import Face, FaceAnalyzer
from .enhancer import Enhancer
from .weights import FACE_FILES

__all__ = ["FACE_FILES", "Enhancer", "Face", "FaceAnalyzer"]

"""Readers for real amodal datasets in the authors' curated formats: SAIL-VOS-2D, TAO-Amodal, MOVi.

Each reader opens one JSON annotation file and yields `AmodalClip` objects (one object track each). COCO RLE
decoding needs ``pycocotools`` (``pip install 'diffusion-vas[datasets]'``).
"""

from .clip import AmodalClip, modal_box
from .movi import MoviAnnotations, read_movi
from .sailvos import SailVosAnnotations, read_complete_objects, read_sailvos
from .tao_amodal import TaoAmodalAnnotations, read_tao_amodal

__all__ = ["AmodalClip", "modal_box", "SailVosAnnotations", "read_sailvos", "read_complete_objects",
           "TaoAmodalAnnotations", "read_tao_amodal", "MoviAnnotations", "read_movi"]

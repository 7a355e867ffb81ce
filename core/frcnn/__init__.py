"""The Visual Genome Faster R-CNN that VisualBERT's and LXMERT's demos use to find object regions
(unc-nlp/frcnn-vg-finetuned), written in plain torch.

The architecture is the one of transformers' research-project demo (`modeling_frcnn.py` of the LXMERT
and VisualBERT examples), itself a port of the bottom-up-attention Caffe model: a ResNet-101 "C4"
backbone (stem, res2-res4), a region proposal network on res4, RoI max pooling at 1/16 into 14 x 14,
the res5 stage run on each region (first stride 1 and dilated 3 x 3 convolutions, "RES5HALVE: false"),
the mean over the 14 x 14 cells as the region's 2048-d feature, and heads for 1600 objects (+
background), class-specific boxes, and 400 attributes (+ "no attribute") predicted from the feature
and an embedding of the object class. Module names follow that port, so the Hub's
`pytorch_model.bin` loads by name; every size comes from the checkpoint's `config.yaml`.

The model class behaves like a transformers model for the app's loader: `from_pretrained(folder or hub
id)` reads config.yaml and pytorch_model.bin, `save_pretrained(folder)` writes them.

  config.py       config.yaml as nested mappings
  backbone.py     ResNet stem and res2..res4
  proposals.py    anchors and the region proposal network
  heads.py        RoI pooling, res5 and the object, box and attribute predictors
  model.py        the whole detector, its selection of regions, its files
  calibration.py  random weights made usable (tiny mode)
  inputs.py       the photo as the detector reads it
"""

from core.frcnn.backbone import BLOCKS_PER_STAGE, Backbone, Bottleneck, ConvNorm, Stem
from core.frcnn.config import CONFIG_NAME, WEIGHTS_NAME, FrcnnConfig
from core.frcnn.heads import ROI_CHUNK, BoxPredictor, Res5ROIHeads
from core.frcnn.inputs import MIN_PADDED_SIDE, Preprocessed, preprocess, resized_size
from core.frcnn.model import Detections, VisualGenomeFasterRCNN
from core.frcnn.proposals import RPN, AnchorGenerator, RPNHead

__all__ = [
    "BLOCKS_PER_STAGE",
    "CONFIG_NAME",
    "MIN_PADDED_SIDE",
    "ROI_CHUNK",
    "RPN",
    "WEIGHTS_NAME",
    "AnchorGenerator",
    "Backbone",
    "Bottleneck",
    "BoxPredictor",
    "ConvNorm",
    "Detections",
    "FrcnnConfig",
    "Preprocessed",
    "RPNHead",
    "Res5ROIHeads",
    "Stem",
    "VisualGenomeFasterRCNN",
    "preprocess",
    "resized_size",
]

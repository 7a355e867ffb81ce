"""Tiny, randomly initialised models of the registry's classes, for tiny mode (offline, tests, CI).

Every builder returns `(config, *preprocessors)`: the model is `model_class(config)`, each preprocessor
(image processor, tokenizer, processor, generation config) is saved beside it with `save_pretrained`.
Builders keep every setting the app relies on from the real checkpoint (docs/checkpoints.md: sizes,
resize, crop, resample, mean/std, label sets, special tokens, geometry) and differ only in the size of
the network and the vocabulary. Importing a module here imports transformers only inside its builders.

  common.py    label sets, ImageNet mean/std, the BEiT image processor
  classify.py  BEiT, LeViT, Perceiver classifiers
  segment.py   BEiT UperNet, Mask2Former
  text.py      tokenizers trained offline on assets/tiny-corpus.txt; ViT-GPT2, TrOCR
  chat.py      ViP-LLaVA
  imagegpt.py  ImageGPT with a palette of the example photos
  flow.py      Perceiver IO optical flow
  zero_shot.py VisionTextDualEncoder (CLIP vision + BERT) with an Italian WordPiece, like clip-italian
  inside.py    BEiT with its masked-image-modeling head (the tiny DALL-E VAE is in core/dalle_vae/files.py)
"""

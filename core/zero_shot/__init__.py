"""Zero-shot labels and search by text with a vision-text dual encoder (clip-italian).

transformers' zero-shot image classification pipeline does not take VisionTextDualEncoderModel, so this
package does what the model's forward does, in parts that can be reused: the processor's image
processor and tokenizer (preprocess), `get_image_features` and `get_text_features` (forward), then
normalised embeddings, cosine similarities and a softmax with the model's own logit scale
(`logit_scale.exp()`, as its forward) (postprocess). Results are plain Python.

  photos.py    photos keyed by content; the bounded cache of their image embeddings
  text.py      labels, captions, the prompt template and the query, checked and tidied
  encoders.py  preprocess -> image and text encoders -> normalised embeddings, similarities
  results.py   the results' dataclasses and their JSON form
  requests.py  the entry points: zero_shot, rank_captions, search_images, classify_photos

Image embeddings are kept per photo, keyed by the photo's content (a hash of the uploaded file's bytes,
or of the pixels) and the model, in a cache of bounded size: a new question about the same photos only
runs the text encoder.
"""

from core.zero_shot.encoders import (
    IMAGE_BATCH,
    ImageEmbeddings,
    TextEmbeddings,
    TextInputs,
    embed_photos,
    embed_texts,
    encode_images,
    encode_texts,
    logit_scale,
    preprocess_images,
    preprocess_texts,
    similarities,
    text_limit,
    text_notes,
)
from core.zero_shot.photos import (
    EMBEDDING_CACHE_BYTES,
    EmbeddingCache,
    Photo,
    as_photo,
    get_embedding_cache,
    photo_from_file,
    photo_from_image,
)
from core.zero_shot.requests import (
    DEFAULT_MODEL,
    MAX_IMAGES,
    TASK,
    classify_photos,
    rank_captions,
    search_images,
    zero_shot,
    zero_shot_models,
)
from core.zero_shot.results import (
    Answer,
    BatchResult,
    LabelScore,
    Match,
    ModelInfo,
    SearchResult,
    Timings,
    ZeroShotResult,
)
from core.zero_shot.text import (
    DEFAULT_TEMPLATE,
    MAX_LABELS,
    MAX_TEMPLATE_CHARS,
    PLACEHOLDER,
    apply_template,
    check_query,
    check_template,
    parse_labels,
)

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_TEMPLATE",
    "EMBEDDING_CACHE_BYTES",
    "IMAGE_BATCH",
    "MAX_IMAGES",
    "MAX_LABELS",
    "MAX_TEMPLATE_CHARS",
    "PLACEHOLDER",
    "TASK",
    "Answer",
    "BatchResult",
    "EmbeddingCache",
    "ImageEmbeddings",
    "LabelScore",
    "Match",
    "ModelInfo",
    "Photo",
    "SearchResult",
    "TextEmbeddings",
    "TextInputs",
    "Timings",
    "ZeroShotResult",
    "apply_template",
    "as_photo",
    "check_query",
    "check_template",
    "classify_photos",
    "embed_photos",
    "embed_texts",
    "encode_images",
    "encode_texts",
    "get_embedding_cache",
    "logit_scale",
    "parse_labels",
    "photo_from_file",
    "photo_from_image",
    "preprocess_images",
    "preprocess_texts",
    "rank_captions",
    "search_images",
    "similarities",
    "text_limit",
    "text_notes",
    "zero_shot",
    "zero_shot_models",
]

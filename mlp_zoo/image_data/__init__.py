"""Images in, model inputs out, the same for PyTorch and Jittor: safe decoding (``decode``), each release's
evaluation transform (``transforms``), folder listing (``folder``), ordered streaming over worker processes
(``stream``), ImageNet class names (``labels``) and the fine-tuning data (``datasets``)."""
from .decode import MAX_PIXELS, BadImage, BadImageError, load_rgb, open_rgb, to_rgb
from .folder import IMAGE_SUFFIXES, FolderError, Listing, image_folder, labelled_folder, list_folder
from .labels import class_names, label_set_for, synsets
from .stream import stream
from .transforms import eval_transform

__all__ = ["MAX_PIXELS", "BadImage", "BadImageError", "load_rgb", "open_rgb", "to_rgb", "IMAGE_SUFFIXES",
           "FolderError", "Listing", "image_folder", "labelled_folder", "list_folder", "class_names",
           "label_set_for", "synsets", "stream", "eval_transform"]

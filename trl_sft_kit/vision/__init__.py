"""Vision-language SFT: images in conversations, a vision-language model, TRL's vision collator.

``rows`` turns the formats people ship into TRL's one form (content parts + ``images``); ``data`` reads a
source into such rows with their report; ``compile`` builds the trainer for a vision-language model.
"""

from trl_sft_kit.vision.rows import IMAGE_MARKER, load_image, vision_row

__all__ = ["IMAGE_MARKER", "load_image", "vision_row"]

"""The seven FER2013 expressions, in the data set's label order (0..6)."""

CLASS_NAMES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(CLASS_NAMES)
IMAGE_SIZE = 48  # FER2013 faces are 48x48 grayscale

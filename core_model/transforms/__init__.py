"""Model inputs built from images: position masks, contralateral adversarial samples, classifier and segmentation inputs."""

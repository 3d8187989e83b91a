"""Image computations shared by training and inference: the one input pipeline (preprocess), tissue mask and orientation, contours, location, colour map."""

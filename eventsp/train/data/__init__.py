"""Dataset readers for the trainers (images: ``eventsp.train.data.images``)."""

"""Losses: segmentation (Dice + BCE) and classification (focal + KL robust term, Eq. 10-11)."""

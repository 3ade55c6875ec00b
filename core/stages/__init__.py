"""Loop stages, one file each: train (GRPO/SFT), probe (GCP), judge (JGLV), expand (EDDE), assemble."""

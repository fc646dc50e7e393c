"""Fine-tuning in PyTorch and Jittor with one recipe: the framework-neutral parts (learning-rate schedule, batch
order and sharding, checkpoint files, the training loop) live here once; ``torch_trainer`` and
``jittor_trainer`` mirror each other and hold only what each framework does its own way (DDP under torchrun,
Jittor's MPI mode under mpirun)."""

"""The HTTP surfaces (Powertools REST resolver): request/response models, routes, error mapping."""

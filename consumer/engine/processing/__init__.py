"""The request processor, split into its stages: route and prepare, execute (memory, then
Stripe), answer."""

"""Does an input lie inside what the engine can read? Header rules, an out-of-distribution score on the
engine's image embedding and a frontal-chest check (engines.scope.gate), with statistics fitted by
`radstation-eval scope fit` and shipped next to the weights."""

"""The trigger library: each module describes what starts, continues and stops a journey,
and ships a ready journey recipe that validates as a JourneyDefinition."""

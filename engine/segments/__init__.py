"""Who a contact is: conditions over attributes, metrics, events and history, and the facts
they read. Today inside journeys; named segments grow here."""

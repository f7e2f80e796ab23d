"""Open311 GeoReport v2 (`/open311/v2`): the wire format, the views, the endpoints and the admins'
client-key endpoints. The stored side (clients, submissions, queries) is `models/appeals/open311.py`."""

"""The two stages on user data: conditions from masks, depth and RGB, and stage outputs back at the input size."""

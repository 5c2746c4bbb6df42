"""Demo brand "鲜果时光 FreshHours": a realistic, reproducible data set and the OneID accuracy metric.

The generator writes the files a real fresh-fruit chain would hand over (store list, channel order
exports in each channel's own layout, an event stream) together with the ground truth behind them, so
the importer, OneID and the analytics can be checked against what really happened.
"""

"""The domain: schedules, slot matching, runs, states and flips, thresholds, rollups.

Plain Python over an injected clock and a transaction it is handed (:mod:`.transaction` says
what it needs of one). It imports nothing of the store, HTTP or the exposition.
"""

-- Inventory: the categories gaining the most expected engaged users in the latest
-- forecast, against the forecast of the score date before it.
-- expected_users is the sum over active users of their probability of engaging with
-- the category in the model's horizon (the days after score_date); expected_new_users
-- counts only users who have not engaged with it in their history window.
-- Run: python -m jobs sql --file sql/inventory_demand_shift.sql
-- columns: score_date, category, expected_users, previous_expected_users, expected_users_change, change_pct, expected_new_users, expected_new_users_change
WITH latest AS (SELECT max(score_date) AS score_date FROM category_demand_forecast)
SELECT f.score_date,
       f.category,
       round(f.expected_users, 1) AS expected_users,
       round(f.previous_expected_users, 1) AS previous_expected_users,
       round(f.expected_users_change, 1) AS expected_users_change,
       round(100 * f.expected_users_change / nullif(f.previous_expected_users, 0), 1) AS change_pct,
       round(f.expected_new_users, 1) AS expected_new_users,
       round(f.expected_new_users_change, 1) AS expected_new_users_change
FROM category_demand_forecast AS f
JOIN latest USING (score_date)
-- Qualified: the unrounded values, not the rounded output columns of the same names (engines differ there).
ORDER BY f.expected_users_change DESC NULLS LAST, f.expected_users DESC, f.category
LIMIT 20

-- Inventory: the categories gaining the most expected engaged users in the latest
-- forecast, against the forecast of the score date before it.
-- expected_users is the sum over active users of their probability of engaging with
-- the category in the model's horizon (the days after score_date); expected_new_users
-- counts only users who have not engaged with it in their history window.
-- Run: python -m jobs sql --file sql/inventory_demand_shift.sql
-- columns: score_date, category, expected_users, previous_expected_users, expected_users_change, change_pct, expected_new_users, expected_new_users_change
WITH latest AS (SELECT max(score_date) AS score_date FROM category_demand_forecast),
-- The unrounded values under other names to sort on: an ORDER BY naming a rounded output column sorts on the
-- rounded value in DuckDB and on the raw one in DataFusion, and near-zero changes then order differently.
shift AS (
    SELECT f.*, f.expected_users_change AS sort_change, f.expected_users AS sort_users
    FROM category_demand_forecast AS f
    JOIN latest USING (score_date)
)
SELECT score_date,
       category,
       round(expected_users, 1) AS expected_users,
       round(previous_expected_users, 1) AS previous_expected_users,
       round(expected_users_change, 1) AS expected_users_change,
       round(100 * expected_users_change / nullif(previous_expected_users, 0), 1) AS change_pct,
       round(expected_new_users, 1) AS expected_new_users,
       round(expected_new_users_change, 1) AS expected_new_users_change
FROM shift
ORDER BY sort_change DESC NULLS LAST, sort_users DESC, category
LIMIT 20

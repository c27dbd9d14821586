-- a filter over a projection in a subquery
SELECT kk, doubled FROM (SELECT k AS kk, i * 2 AS doubled FROM events) WHERE doubled > 150
